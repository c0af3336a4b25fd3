"""The captions format and the paper's instruction pools."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import ValidationError

from llava_kit.data.formats.captions import CaptionsFormat, CaptionsOptions
from llava_kit.data.formats.fields import UnknownField
from llava_kit.data.formats.problems import collecting_problems
from llava_kit.data.instructions import BRIEF_INSTRUCTIONS, DETAILED_INSTRUCTIONS, pick_instruction
from llava_kit.data.sample import Sample
from llava_kit.errors import DataError
from llava_kit.plugins.registry import get_registry
from llava_kit.templates.base import Message, Segment
from llava_kit.templates.plain import PlainTemplate


@pytest.fixture
def root(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (2, 2)).save(images / name)
    Image.new("RGB", (2, 2)).save(tmp_path / "outside.jpg")
    return images


def _write(path: Path, records: list[Any]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    else:
        path.write_text(json.dumps(records), encoding="utf-8")
    return path


def _load(path: Path, root: Path, **options: Any) -> list[Sample]:
    return CaptionsFormat(CaptionsOptions(path=str(path), image_root=str(root), **options)).load()


def _pretraining_record(sample_id: str, image: str, caption: str) -> dict[str, Any]:
    # The CC-595K / LCS-558K layout: a pool instruction plus the image, then the caption.
    return {
        "id": sample_id,
        "image": image,
        "conversations": [
            {"from": "human", "value": "Render a clear and concise summary of the photo.\n<image>"},
            {"from": "gpt", "value": caption},
        ],
    }


def test_brief_pool_is_the_papers_eleven_instructions() -> None:
    assert len(BRIEF_INSTRUCTIONS) == 11
    assert len(set(BRIEF_INSTRUCTIONS)) == 11
    # The facts file quotes these two; the rest come from the paper's appendix table.
    assert BRIEF_INSTRUCTIONS[0] == "Describe the image concisely."
    assert BRIEF_INSTRUCTIONS[1] == "Provide a brief description of the given image."
    assert BRIEF_INSTRUCTIONS[-1] == "Create a compact narrative representing the image presented."
    assert all(text.endswith(".") for text in BRIEF_INSTRUCTIONS)


def test_detailed_pool_is_the_papers_sixteen_instructions() -> None:
    assert len(DETAILED_INSTRUCTIONS) == 16
    assert len(set(DETAILED_INSTRUCTIONS)) == 16
    assert DETAILED_INSTRUCTIONS[0] == "Describe the following image in detail"
    assert DETAILED_INSTRUCTIONS[-1] == "Write an exhaustive depiction of the given image"
    assert not any(text.endswith(".") for text in DETAILED_INSTRUCTIONS)


def test_pick_instruction_is_a_fixed_function_of_id_and_seed() -> None:
    # Pinned: changing the draw silently changes every stage-1 dataset built with it.
    assert (
        pick_instruction(BRIEF_INSTRUCTIONS, "GCC_train_000000001", 0)
        == "Summarize the visual content of the image."
    )
    assert (
        pick_instruction(BRIEF_INSTRUCTIONS, "GCC_train_000000001", 1)
        == "Relay a brief, clear account of the picture shown."
    )
    ids = [f"GCC_train_{i:09d}" for i in range(440)]
    draws = [pick_instruction(BRIEF_INSTRUCTIONS, key, 0) for key in ids]
    assert draws == [pick_instruction(BRIEF_INSTRUCTIONS, key, 0) for key in ids]
    counts = Counter(draws)
    assert set(counts) == set(BRIEF_INSTRUCTIONS)  # every instruction gets used
    assert max(counts.values()) < 3 * min(counts.values())  # roughly even
    reseeded = [pick_instruction(BRIEF_INSTRUCTIONS, key, 1) for key in ids]
    assert sum(a != b for a, b in zip(draws, reseeded, strict=True)) > len(ids) // 2


def pick_instruction_index(key: str, seed: int) -> int:
    """An independent statement of the draw: blake2b-64 of "seed NUL id", big-endian, mod 11."""
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 11


def test_caption_records_become_instruction_samples(tmp_path: Path, root: Path) -> None:
    path = _write(tmp_path / "c.json", [
        {"id": "x1", "image": "a.jpg", "caption": "a dog on the grass"},
        {"id": 2, "image": "b.jpg", "caption": "two cats"},
    ])
    assert _load(path, root, instruction_seed=3) == [
        Sample(
            id="x1",
            messages=[
                Message("user", BRIEF_INSTRUCTIONS[pick_instruction_index("x1", 3)] + "\n<image>"),
                Message("assistant", "a dog on the grass"),
            ],
            images=[(root / "a.jpg").resolve()],
        ),
        Sample(
            id="2",
            messages=[
                Message("user", BRIEF_INSTRUCTIONS[pick_instruction_index("2", 3)] + "\n<image>"),
                Message("assistant", "two cats"),
            ],
            images=[(root / "b.jpg").resolve()],
        ),
    ]


def test_pretraining_layout_takes_the_gpt_turn_as_caption(tmp_path: Path, root: Path) -> None:
    record = {"id": "GCC_1", "image": "a.jpg", "caption": "a boat"}
    plain = _write(tmp_path / "plain.jsonl", [record])
    chat = _write(tmp_path / "chat.json", [_pretraining_record("GCC_1", "a.jpg", "a boat")])
    # The same id gets the same drawn instruction whatever the layout.
    assert _load(chat, root) == _load(plain, root)
    (sample,) = _load(chat, root)
    assert sample.messages[1] == Message("assistant", "a boat")


def test_layouts_can_be_mixed_and_instructions_do_not_depend_on_order_or_limit(
    tmp_path: Path, root: Path
) -> None:
    records = [
        {"id": f"s{i}", "image": "a.jpg", "caption": f"caption {i}"} for i in range(30)
    ] + [_pretraining_record("p0", "b.jpg", "last")]
    forward = _load(_write(tmp_path / "f.json", records), root)
    backward = _load(_write(tmp_path / "b.json", records[::-1]), root)
    assert sorted(forward, key=lambda s: s.id) == sorted(backward, key=lambda s: s.id)
    limited = _load(_write(tmp_path / "f.json", records), root, limit=5)
    assert limited == forward[:5]
    assert len({s.messages[0].content for s in forward}) > 1  # not one fixed instruction


def test_the_plain_template_drops_the_drawn_instruction(tmp_path: Path, root: Path) -> None:
    path = _write(tmp_path / "c.json", [_pretraining_record("GCC_9", "a.jpg", "a red bus")])
    (sample,) = _load(path, root)
    assert PlainTemplate().render(sample.messages) == [
        Segment("<image>", trained=False),
        Segment("a red bus\n", trained=True),
    ]


def test_registered_as_captions() -> None:
    assert get_registry().get("data_format", "captions").component is CaptionsFormat


def test_image_root_is_required() -> None:
    with pytest.raises(ValidationError, match="image_root"):
        CaptionsOptions(path="c.json")


NOT_A_CAPTION_PAIR = "'conversations' must be exactly one human turn and one gpt turn"


@pytest.mark.parametrize(
    ("record", "expected", "kind"),
    [
        ({"image": "a.jpg", "caption": "c"}, "record [0]: missing 'id'", "bad_record"),
        ({"id": "s", "image": "a.jpg"}, "sample 's' (record [0]): needs a 'caption'",
         "bad_record"),
        ({"id": "s", "image": "a.jpg", "caption": "  "},
         "sample 's' (record [0]): the caption must be a non-empty string", "empty_answer"),
        ({"id": "s", "image": "a.jpg", "caption": 5},
         "sample 's' (record [0]): the caption must be a non-empty string", "bad_record"),
        ({**_pretraining_record("s", "a.jpg", "c"), "caption": "c"},
         "sample 's' (record [0]): has both 'caption' and 'conversations'", "bad_record"),
        ({"id": "s", "image": "a.jpg", "conversations": [{"from": "gpt", "value": "c"}]},
         f"sample 's' (record [0]): {NOT_A_CAPTION_PAIR}", "bad_record"),
        ({"id": "s", "image": "a.jpg", "conversations": [
            {"from": "gpt", "value": "c"}, {"from": "human", "value": "<image>"}]},
         f"sample 's' (record [0]): {NOT_A_CAPTION_PAIR}", "bad_record"),
        ({"id": "s", "caption": "c"},
         "sample 's' (record [0]): 'image' must be one non-empty path", "bad_record"),
        ({"id": "s", "image": ["a.jpg"], "caption": "c"},
         "sample 's' (record [0]): 'image' must be one non-empty path", "bad_record"),
        ({"id": "s", "image": "../outside.jpg", "caption": "c"},
         "sample 's' (record [0]): image '../outside.jpg' resolves outside the image root",
         "outside_image_root"),
        ({"id": "s", "image": "gone.jpg", "caption": "c"},
         "sample 's' (record [0]): image 'gone.jpg' not found under", "missing_image"),
    ],
)
def test_each_problem_names_the_sample(
    tmp_path: Path, root: Path, record: dict[str, Any], expected: str, kind: str
) -> None:
    path = _write(tmp_path / "c.json", [record])
    with pytest.raises(DataError) as caught:
        _load(path, root)
    message = str(caught.value)
    assert message.startswith(f"{path}: 1 problem in the data file:\n")
    assert f"\n  {expected}" in message
    with collecting_problems() as found:
        assert _load(path, root) == []
    sample_id = "s" if expected.startswith("sample 's'") else None
    assert [(p.kind, p.sample_id) for p in found] == [(kind, sample_id)]


def test_all_problems_are_reported_together(tmp_path: Path, root: Path) -> None:
    records = [
        {"id": "ok", "image": "a.jpg", "caption": "fine"},
        {"id": "no-caption", "image": "a.jpg"},
        {"id": "no-image", "image": "gone.jpg", "caption": "c"},
    ]
    with pytest.raises(DataError) as caught:
        _load(_write(tmp_path / "c.jsonl", records), root)
    message = str(caught.value)
    assert ": 2 problems in the data file:" in message
    assert "sample 'no-caption' (line 2)" in message
    assert "sample 'no-image' (line 3)" in message


def test_unknown_fields_of_both_layouts_are_reported_by_sample(tmp_path: Path, root: Path) -> None:
    pretraining = _pretraining_record("p", "a.jpg", "c")
    pretraining["conversations"][1]["lang"] = "en"
    records = [{"id": "s", "image": "a.jpg", "caption": "c", "url": "http://x"}, pretraining,
               {"id": "ok", "image": "b.jpg", "caption": "c"}]
    path = _write(tmp_path / "c.json", records)
    fmt = CaptionsFormat(CaptionsOptions(path=str(path), image_root=str(root)))
    assert fmt.unknown_fields() == [
        UnknownField(path, "s", "record [0]: unknown field(s) 'url'"),
        UnknownField(path, "p", "record [1]: turn 1 has unknown field(s) 'lang'"),
    ]
