"""The scienceqa reader and the LLaVA JSON export on small hand-made ScienceQA layouts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from llava_kit.data.formats.fields import UnknownField
from llava_kit.data.formats.problems import collecting_problems
from llava_kit.data.formats.scienceqa import ScienceQAFormat, ScienceQAOptions, export_llava_json
from llava_kit.errors import DataError
from llava_kit.plugins import builtin
from llava_kit.templates.base import Message


def problem(question: str, *, image: bool, split: str, hint: str = "", answer: int = 0,
            **extra: Any) -> dict[str, Any]:
    return {
        "question": question,
        "choices": ["red", "blue"],
        "answer": answer,
        "hint": hint,
        "image": "image.png" if image else None,
        "task": "closed choice",
        "grade": "grade3",
        "subject": "natural science",
        "topic": "physics",
        "category": "Colors",
        "skill": "Identify colors",
        "lecture": "Colors differ.",
        "solution": "It is blue.",
        "split": split,
        **extra,
    }


PROBLEMS = {
    "1": problem("What color is the ball?", image=True, split="train", answer=1),
    "2": problem("What color is Tom's hat?", image=False, split="train", hint="Tom's hat is red."),
    "3": problem("What color is the sky?", image=True, split="val", answer=1),
    "4": problem("Which word is a color?", image=False, split="val"),
}
SPLITS = {"train": ["1", "2"], "val": ["3", "4"], "minival": ["3"]}
OPTIONS = "(A) red (B) blue"


def write_layout(root: Path, images: dict[str, str], problems: dict[str, Any] = PROBLEMS,
                 splits: dict[str, list[str]] = SPLITS) -> Path:
    """problems.json + pid_splits.json in root, and an image at each given relative path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "problems.json").write_text(json.dumps(problems))
    (root / "pid_splits.json").write_text(json.dumps(splits))
    for relative in images.values():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (255, 0, 0)).save(path)
    return root


def load(root: Path, **options: Any) -> list:
    return ScienceQAFormat(ScienceQAOptions(root=str(root), **options)).load()


def test_official_layout_gives_exact_samples(tmp_path: Path) -> None:
    root = write_layout(tmp_path, {"1": "train/1/image.png"})
    first, second = load(root, split="train", prompt_format="QCM-LEA")

    assert first.id == "1"
    assert first.messages == [
        Message("user", f"<image>\nWhat color is the ball?\nContext: N/A\nOptions: {OPTIONS}"),
        Message("assistant", "Colors differ. It is blue. The answer is B."),
    ]
    assert first.images == [(root / "train/1/image.png").resolve()]
    assert first.meta == {
        "subject": "natural science", "grade": "grade3", "has_text_context": False,
        "has_image": True, "answer": 1, "choices": ["red", "blue"], "split": "train",
        "topic": "physics", "category": "Colors", "skill": "Identify colors",
    }

    assert second.id == "2"
    assert second.images == []
    assert second.messages[0] == Message(
        "user", "What color is Tom's hat?\nContext: Tom's hat is red.\nOptions: (A) red (B) blue"
    )
    assert second.meta["has_text_context"] is True
    assert second.meta["has_image"] is False


def test_images_subfolder_and_minival_images_under_val(tmp_path: Path) -> None:
    # ScienceQA's repository keeps images in data/scienceqa/images/{split}/{pid}; minival
    # problems are val problems, so their images are under val/.
    root = write_layout(tmp_path, {"3": "images/val/3/image.png"})
    (sample,) = load(root, split="minival", prompt_format="QCM-A")
    assert sample.id == "3"
    assert sample.images == [(root / "images/val/3/image.png").resolve()]
    assert sample.meta["split"] == "val"
    assert sample.messages[1] == Message("assistant", "The answer is B.")


def test_flat_image_root_elsewhere(tmp_path: Path) -> None:
    root = write_layout(tmp_path / "data", {})
    image_root = tmp_path / "pictures"
    write_layout(image_root, {"1": "1/image.png"})
    samples = load(root, split="train", image_root=str(image_root))
    assert samples[0].images == [(image_root / "1/image.png").resolve()]


def test_split_selection_order_and_limit(tmp_path: Path) -> None:
    splits = {"train": ["4", "2", "3"], "val": ["1"]}
    root = write_layout(tmp_path, {"3": "val/3/image.png"}, splits=splits)
    assert [s.id for s in load(root, split="train")] == ["4", "2", "3"]
    assert [s.id for s in load(root, split="train", limit=2)] == ["4", "2"]


def test_missing_image_names_the_pid_and_the_paths_tried(tmp_path: Path) -> None:
    root = write_layout(tmp_path, {})
    with pytest.raises(DataError) as info:
        load(root, split="val")
    text = str(info.value)
    assert "pid '3'" in text
    assert "val/3/image.png, images/val/3/image.png, 3/image.png" in text
    assert "image_root" in text


def test_image_paths_may_not_escape_the_image_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write_layout(outside, {"x": "image.png"})
    problems = {"../outside": problem("What color?", image=True, split="train")}
    root = write_layout(tmp_path / "data", {}, problems=problems, splits={"train": ["../outside"]})
    with pytest.raises(DataError, match="outside the image root"):
        load(root, split="train")


def test_missing_files_say_where_to_get_the_data(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load(tmp_path / "nowhere")
    text = str(info.value)
    assert "problems.json" in text
    assert "lupantech/ScienceQA" in text
    assert "data.root" in text
    (tmp_path / "problems.json").write_text("{}")
    with pytest.raises(DataError, match="pid_splits.json"):
        load(tmp_path)


def test_unknown_split_lists_the_available_ones(tmp_path: Path) -> None:
    root = write_layout(tmp_path, {})
    with pytest.raises(DataError, match="no split 'test'; available: minival, train, val"):
        load(root, split="test")


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    root = write_layout(tmp_path, {})
    (root / "problems.json").write_text('{"1": {"question": }')
    with pytest.raises(DataError, match=r"problems.json: invalid JSON at line 1, column 20"):
        load(root)


def test_invalid_problems_are_all_reported_with_their_pids(tmp_path: Path) -> None:
    problems = {
        **PROBLEMS,
        "1": problem("Q?", image=False, split="train", answer=2),
        "2": {**problem("Q?", image=False, split="train"), "choices": list("abcdef")},
    }
    splits = {"train": ["1", "2", "9"]}
    root = write_layout(tmp_path, {}, problems=problems, splits=splits)
    with pytest.raises(DataError) as info:
        load(root)
    text = str(info.value)
    assert "3 invalid problem(s)" in text
    assert "pid '1': 'answer' must be a choice index 0..1, got 2" in text
    assert "pid '2': 6 choices" in text
    assert "pid '9' (split 'train') is not in problems.json" in text


def test_collected_problems_carry_their_kind_and_pid(tmp_path: Path) -> None:
    problems = {**PROBLEMS, "2": problem("Q?", image=False, split="train", answer=2)}
    root = write_layout(tmp_path, {}, problems=problems)
    with collecting_problems() as found:
        assert load(root, split="train") == []
    assert [(p.kind, p.sample_id, p.where) for p in found] == [
        ("bad_record", "2", "pid '2'"), ("missing_image", "1", "pid '1'"),
    ]
    assert found[0].message == "'answer' must be a choice index 0..1, got 2"
    assert found[1].message.startswith("image not found under the image root; tried train/1/")


def test_unknown_problem_fields_are_reported_by_pid(tmp_path: Path) -> None:
    problems = {**PROBLEMS, "2": {**PROBLEMS["2"], "difficulty": 3, "notes": ""},
                "4": {**PROBLEMS["4"], "typo": 1}}
    root = write_layout(tmp_path, {"1": "train/1/image.png"}, problems=problems)
    fmt = ScienceQAFormat(ScienceQAOptions(root=str(root), split="train"))
    assert fmt.unknown_fields() == [
        UnknownField(root / "problems.json", "2", "unknown field(s) 'difficulty', 'notes'"),
    ]
    limited = ScienceQAFormat(ScienceQAOptions(root=str(root), split="train", limit=1))
    assert limited.unknown_fields() == []


def test_unknown_prompt_format_is_a_data_error(tmp_path: Path) -> None:
    root = write_layout(tmp_path, {"1": "train/1/image.png"})
    with pytest.raises(DataError, match="unknown ScienceQA prompt format 'QCM-B'"):
        load(root, prompt_format="QCM-B")


@pytest.mark.parametrize(
    "captions",
    [
        {"model": "a captioner", "captions": {"1": "A blue ball.", "2": "A hat."}},
        [{"id": "1", "image": "train/1/image.png", "caption": "A blue ball."},
         {"id": "2", "image": "x.png", "caption": "A hat."}],
    ],
)
def test_captions_join_the_context(tmp_path: Path, captions: Any) -> None:
    root = write_layout(tmp_path, {"1": "train/1/image.png"})
    (root / "captions.json").write_text(json.dumps(captions))
    first, second = load(root, split="train", prompt_format="CQM-A", use_caption=True)
    assert first.messages[0].content.startswith("<image>\nContext: A blue ball.\nQuestion:")
    assert second.messages[0].content.startswith("Context: Tom's hat is red. A hat.\nQuestion:")


def test_use_caption_without_captions_file(tmp_path: Path) -> None:
    root = write_layout(tmp_path, {"1": "train/1/image.png"})
    with pytest.raises(DataError, match="use_caption is set but .*captions.json does not exist"):
        load(root, use_caption=True)


def test_options_reject_unknown_keys() -> None:
    with pytest.raises(ValueError, match="prompt"):
        ScienceQAOptions(root="x", prompt="QCM-A")


def test_registered_as_scienceqa() -> None:
    # Only the data-format hook: building the whole registry would import every model kind.
    registered: dict[str, type] = {}
    builtin.register_data_formats(register=lambda name, component, **_: registered.update(
        {name: component}))
    assert registered["scienceqa"] is ScienceQAFormat


def test_export_matches_the_reference_converter(tmp_path: Path) -> None:
    root = write_layout(tmp_path / "data", {})
    out = tmp_path / "out" / "llava_train_QCM-LEA.json"
    assert export_llava_json(root, "train", "QCM-LEA", out) == 2
    expected = [
        {
            "id": "1",
            "image": "1/image.png",
            "conversations": [
                {"from": "human",
                 "value": f"What color is the ball?\nContext: N/A\nOptions: {OPTIONS}\n<image>"},
                {"from": "gpt", "value": "Colors differ. It is blue. The answer is B."},
            ],
        },
        {
            "id": "2",
            "conversations": [
                {"from": "human", "value": "What color is Tom's hat?\nContext: Tom's hat is red.\n"
                                           "Options: (A) red (B) blue"},
                {"from": "gpt", "value": "Colors differ. It is blue. The answer is A."},
            ],
        },
    ]
    assert out.read_text() == json.dumps(expected, indent=2)


def test_export_with_captions_and_lepa(tmp_path: Path) -> None:
    root = write_layout(tmp_path, {})
    (root / "captions.json").write_text(json.dumps({"captions": {"3": "A clear sky."}}))
    out = tmp_path / "val.json"
    export_llava_json(root, "minival", "CQM-LEPA", out, use_caption=True)
    (record,) = json.loads(out.read_text())
    assert record["image"] == "3/image.png"
    assert record["conversations"][0]["value"] == (
        f"Context: A clear sky.\nQuestion: What color is the sky?\nOptions: {OPTIONS}\n<image>"
    )
    assert record["conversations"][1]["value"] == (
        "LECTURE: Colors differ.\nSOLUTION: It is blue.\n###\nANSWER: B."
    )
