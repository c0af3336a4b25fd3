"""The llava_json format: LLaVA conversation files to Samples, every problem reported at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import ValidationError

from llava_kit.data.formats.fields import UnknownField
from llava_kit.data.formats.llava_json import LlavaJSONFormat, LlavaJSONOptions
from llava_kit.data.formats.problems import collecting_problems
from llava_kit.data.sample import Sample
from llava_kit.errors import DataError
from llava_kit.plugins.registry import get_registry
from llava_kit.templates.base import Message


@pytest.fixture
def root(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (2, 2)).save(images / name)
    Image.new("RGB", (2, 2)).save(tmp_path / "outside.png")
    return images


def _write(path: Path, records: list[Any]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    else:
        path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return path


def _load(path: Path, root: Path | None = None, **options: Any) -> list[Sample]:
    image_root = str(root) if root is not None else None
    fmt = LlavaJSONFormat(LlavaJSONOptions(path=str(path), image_root=image_root, **options))
    return fmt.load()


def _problems(path: Path, root: Path | None = None, **options: Any) -> str:
    with pytest.raises(DataError) as caught:
        _load(path, root, **options)
    return str(caught.value)


def _turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"from": role, "value": value} for role, value in pairs]


QA = _turns(("human", "q"), ("gpt", "a"))

RECORDS: list[dict[str, Any]] = [
    {
        "id": "000000033471",
        "image": "a.png",
        "conversations": _turns(
            ("human", "<image>\nWhat colour is the bus?"),
            ("gpt", "Red."),
            ("human", "Where is it?"),
            ("gpt", "On a street."),
        ),
    },
    {"id": 7, "conversations": _turns(("human", "Hello?"), ("gpt", "Hi."))},
    {
        "id": "multi",
        "image": ["b.png", "c.png"],
        "conversations": _turns(("user", "Compare <image> and <image>."), ("assistant", "Same.")),
    },
]


def _expected(root: Path) -> list[Sample]:
    return [
        Sample(
            id="000000033471",
            messages=[
                Message("user", "<image>\nWhat colour is the bus?"),
                Message("assistant", "Red."),
                Message("user", "Where is it?"),
                Message("assistant", "On a street."),
            ],
            images=[(root / "a.png").resolve()],
        ),
        Sample(id="7", messages=[Message("user", "Hello?"), Message("assistant", "Hi.")]),
        Sample(
            id="multi",
            messages=[
                Message("user", "Compare <image> and <image>."),
                Message("assistant", "Same."),
            ],
            images=[(root / "b.png").resolve(), (root / "c.png").resolve()],
        ),
    ]


def test_json_list_becomes_samples(tmp_path: Path, root: Path) -> None:
    samples = _load(_write(tmp_path / "d.json", RECORDS), root)
    assert samples == _expected(root)
    assert all(sample.meta == {} for sample in samples)


def test_jsonl_gives_the_same_samples_and_skips_blank_lines(tmp_path: Path, root: Path) -> None:
    path = _write(tmp_path / "d.jsonl", RECORDS)
    path.write_text(path.read_text() + "\n   \n", encoding="utf-8")
    assert _load(path, root) == _expected(root)


def test_text_only_file_needs_no_image_root(tmp_path: Path) -> None:
    samples = _load(_write(tmp_path / "d.json", [RECORDS[1]]))
    messages = [Message("user", "Hello?"), Message("assistant", "Hi.")]
    assert samples == [Sample(id="7", messages=messages)]


def test_missing_image_marker_is_inserted_at_the_start_of_the_first_human_turn(
    tmp_path: Path, root: Path
) -> None:
    records = [
        {"id": "one", "image": "a.png",
         "conversations": _turns(("human", "What is this?"), ("gpt", "A bus."),
                                 ("human", "Sure?"), ("gpt", "Yes."))},
        {"id": "two", "image": ["a.png", "b.png"],
         "conversations": _turns(("human", "Compare."), ("gpt", "Same."))},
    ]
    one, two = _load(_write(tmp_path / "d.json", records), root)
    contents = [m.content for m in one.messages]
    assert contents == ["<image>\nWhat is this?", "A bus.", "Sure?", "Yes."]
    assert two.messages[0].content == "<image>\n<image>\nCompare."
    assert two.images == [(root / "a.png").resolve(), (root / "b.png").resolve()]


def test_limit_reads_only_the_first_records(tmp_path: Path, root: Path) -> None:
    broken = {"id": "bad", "conversations": []}
    for name in ("d.json", "d.jsonl"):
        path = _write(tmp_path / name, [*RECORDS, broken])
        assert _load(path, root, limit=2) == _expected(root)[:2]


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValidationError):
        LlavaJSONOptions(path="d.json", limit=0)


def test_registered_as_llava_json() -> None:
    assert get_registry().get("data_format", "llava_json").component is LlavaJSONFormat


@pytest.mark.parametrize(
    ("record", "expected", "kind"),
    [
        ({"conversations": _turns(("human", "q"), ("gpt", "a"))},
         "record [0]: missing 'id'", "bad_record"),
        ({"id": ["x"], "conversations": _turns(("human", "q"), ("gpt", "a"))},
         "record [0]: 'id' must be a string or an integer", "bad_record"),
        ({"id": "s1", "conversations": _turns(("human", "q"), ("bot", "a"))},
         "sample 's1' (record [0]): turn 1 has unknown role 'bot'", "bad_record"),
        ({"id": "s1", "conversations": []},
         "sample 's1' (record [0]): 'conversations' must be a non-empty list", "bad_record"),
        ({"id": "s1"},
         "sample 's1' (record [0]): 'conversations' must be a non-empty list", "bad_record"),
        ({"id": "s1", "conversations": [{"from": "human", "value": 3}]},
         "sample 's1' (record [0]): turn 0 must be an object with 'from' and a string 'value'",
         "bad_record"),
        ({"id": "s1", "conversations": _turns(("gpt", "a"), ("human", "q"))},
         "sample 's1' (record [0]): the first turn must be from 'human'", "bad_record"),
        ({"id": "s1", "conversations": _turns(("human", "q"), ("gpt", "a"), ("gpt", "b"))},
         "sample 's1' (record [0]): turns 1 and 2 are both from the same role", "bad_record"),
        ({"id": "s1", "conversations": _turns(("human", "q"), ("gpt", "a"), ("human", "q2"))},
         "sample 's1' (record [0]): the last turn is from 'human'", "no_answer"),
        ({"id": "s1", "image": "a.png",
          "conversations": _turns(("human", "<image> <image>"), ("gpt", "a"))},
         "sample 's1' (record [0]): 2 <image> marker(s) in the human turns but 1 image(s)",
         "image_markers"),
        ({"id": "s1", "conversations": _turns(("human", "<image>\nq"), ("gpt", "a"))},
         "sample 's1' (record [0]): 1 <image> marker(s) in the human turns but 0 image(s)",
         "image_markers"),
        ({"id": "s1", "image": "a.png",
          "conversations": _turns(("human", "<image>\nq"), ("gpt", "see <image>"))},
         "sample 's1' (record [0]): <image> appears in a gpt turn", "image_markers"),
        ({"id": "s1", "image": 5, "conversations": _turns(("human", "q"), ("gpt", "a"))},
         "sample 's1' (record [0]): 'image' must be a non-empty path string or a list",
         "bad_record"),
        ({"id": "s1", "image": "../outside.png", "conversations": QA},
         "sample 's1' (record [0]): image '../outside.png' resolves outside the image root",
         "outside_image_root"),
        ({"id": "s1", "image": "nope.png", "conversations": QA},
         "sample 's1' (record [0]): image 'nope.png' not found under", "missing_image"),
        ("just a string", "record [0]: expected a JSON object, found a str", "bad_record"),
    ],
)
def test_each_problem_names_the_file_sample_and_fix(
    tmp_path: Path, root: Path, record: Any, expected: str, kind: str
) -> None:
    path = _write(tmp_path / "d.json", [record])
    message = _problems(path, root)
    assert message.startswith(f"{path}: 1 problem in the data file:\n")
    assert f"\n  {expected}" in message
    # Collected instead of raised, the same problem keeps its kind and sample id.
    with collecting_problems() as found:
        assert _load(path, root) == []
    sample_id = "s1" if expected.startswith("sample 's1'") else None
    assert [(p.kind, p.sample_id, p.source) for p in found] == [(kind, sample_id, path)]
    assert f"{found[0].where}: {found[0].message}" == message.splitlines()[1].strip()


def test_jsonl_problems_point_at_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        json.dumps(RECORDS[1]) + "\n\n" + json.dumps({"id": "x", "conversations": []}) + "\n",
        encoding="utf-8",
    )
    assert "\n  sample 'x' (line 3): 'conversations' must be" in _problems(path)


def test_every_problem_in_the_file_is_reported_together(tmp_path: Path, root: Path) -> None:
    records = [
        RECORDS[1],
        {"id": "bad-role", "conversations": _turns(("human", "q"), ("robot", "a"))},
        {"id": "bad-image", "image": "nope.png", "conversations": QA},
        {"conversations": _turns(("human", "q"), ("gpt", "a"))},
    ]
    message = _problems(_write(tmp_path / "d.json", records), root)
    assert ": 3 problems in the data file:" in message
    lines = message.splitlines()[1:4]
    assert lines[0].startswith("  sample 'bad-role' (record [1]): turn 1 has unknown role 'robot'")
    assert lines[1].startswith("  sample 'bad-image' (record [2]): image 'nope.png' not found")
    assert lines[2].startswith("  record [3]: missing 'id'")


def test_a_long_problem_list_is_capped(tmp_path: Path) -> None:
    records = [{"id": f"s{i}", "conversations": []} for i in range(25)]
    message = _problems(_write(tmp_path / "d.json", records))
    assert ": 25 problems in the data file:" in message
    listed = [line for line in message.splitlines() if line.startswith("  sample ")]
    assert len(listed) == 20
    assert listed[-1].startswith("  sample 's19' (record [19])")
    assert "\n  ... and 5 more" in message


def test_images_without_image_root_are_one_problem_naming_the_option(tmp_path: Path) -> None:
    records = [
        {"id": "t", "conversations": _turns(("human", "q"), ("gpt", "a"))},
        {"id": "i1", "image": "a.png", "conversations": _turns(("human", "<image>"), ("gpt", "a"))},
        {"id": "i2", "image": "b.png", "conversations": _turns(("human", "<image>"), ("gpt", "a"))},
    ]
    message = _problems(_write(tmp_path / "d.json", records))
    assert ": 1 problem in the data file:" in message
    expected = "sample 'i1' (record [1]): has images but the data format option 'image_root'"
    assert f"{expected} is not set" in message
    assert "(2 such samples)" in message


def test_missing_image_root_folder_names_the_option(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.json", RECORDS)
    message = _problems(path, tmp_path / "no-such-folder")
    assert "image_root" in message
    assert str(tmp_path / "no-such-folder") in message


def test_missing_data_file_names_the_option(tmp_path: Path) -> None:
    message = _problems(tmp_path / "absent.json")
    assert str(tmp_path / "absent.json") in message
    assert "'path'" in message


def test_invalid_json_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[\n  {"id": "a",\n   "conversations": [}\n]\n', encoding="utf-8")
    message = _problems(path)
    assert message.startswith(f"{path}: invalid JSON at line 3, column 22:")


def test_jsonl_content_in_a_json_file_suggests_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps(RECORDS[0]) + "\n" + json.dumps(RECORDS[1]) + "\n", encoding="utf-8")
    message = _problems(path)
    assert "invalid JSON at line 2, column 1: Extra data" in message
    assert ".jsonl" in message


def test_every_invalid_jsonl_line_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(RECORDS[1]) + '\n{"id": 2,\n' + "not json\n", encoding="utf-8")
    message = _problems(path)
    assert ": 2 problems in the data file:" in message
    assert "\n  line 2: invalid JSON at column 10:" in message
    assert "\n  line 3: invalid JSON at column 1:" in message


def test_a_top_level_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"data": RECORDS}), encoding="utf-8")
    assert "expected a JSON list of records, found a dict" in _problems(path)


def test_unknown_record_and_turn_fields_are_reported_by_sample(tmp_path: Path, root: Path) -> None:
    records = [
        {**RECORDS[1], "note": 1, "source": "x"},
        {"id": "t", "conversations": [{"from": "human", "value": "q", "weight": 1},
                                      {"from": "gpt", "value": "a"}]},
        {"conversations": QA, "extra": True},
        RECORDS[0],
    ]
    path = _write(tmp_path / "d.jsonl", records)
    fmt = LlavaJSONFormat(LlavaJSONOptions(path=str(path), image_root=str(root), limit=3))
    assert fmt.unknown_fields() == [
        UnknownField(path, "7", "line 1: unknown field(s) 'note', 'source'"),
        UnknownField(path, "t", "line 2: turn 0 has unknown field(s) 'weight'"),
        UnknownField(path, None, "line 3: unknown field(s) 'extra'"),
    ]
    assert LlavaJSONFormat(LlavaJSONOptions(path=str(_write(tmp_path / "ok.json", RECORDS)),
                                            image_root=str(root))).unknown_fields() == []
