"""Repeated sample ids: the first loaded sample keeps the id, every other record is listed."""

from __future__ import annotations

import json
from pathlib import Path

from llava_kit.data.duplicates import find_duplicates, first_of_each_id
from llava_kit.data.formats.llava_json import LlavaJSONFormat, LlavaJSONOptions
from llava_kit.data.formats.problems import SampleProblem, collecting_problems
from llava_kit.data.sample import Sample
from llava_kit.templates.base import Message

SOURCE = Path("d.json")


def _sample(sample_id: str, origin: str | None = None) -> Sample:
    messages = [Message("user", "Hi?"), Message("assistant", "Hello.")]
    return Sample(sample_id, messages, origin=origin)


def _dropped(sample_id: str | None, record: str, kind: str = "bad_record") -> SampleProblem:
    where = record if sample_id is None else f"sample {sample_id!r} ({record})"
    return SampleProblem(kind, SOURCE, where, "x", sample_id, record)  # type: ignore[arg-type]


def test_later_samples_with_a_taken_id_are_listed_with_both_places() -> None:
    samples = [_sample("a", "record [0]"), _sample("b", "record [1]"),
               _sample("a", "record [2]"), _sample("a", "record [3]")]
    found = find_duplicates(samples, [])
    assert [(d.sample_id, d.record, d.first, d.index, d.source) for d in found] == [
        ("a", "record [2]", "record [0]", 2, None), ("a", "record [3]", "record [0]", 3, None),
    ]
    assert found[0].message == "record [2]: id already used by record [0]; give every sample its own id"
    assert [s.origin for s in first_of_each_id(samples)] == ["record [0]", "record [1]"]


def test_a_format_that_does_not_say_where_gets_the_place_among_loaded_samples() -> None:
    found = find_duplicates([_sample("x"), _sample("y"), _sample("x")], [])
    assert [(d.record, d.first) for d in found] == [("loaded sample [2]", "loaded sample [0]")]


def test_a_dropped_record_repeating_an_id_is_the_duplicate_and_counts_once() -> None:
    loaded = [_sample("a", "record [1]")]
    dropped = [
        _dropped("a", "record [0]", "missing_image"), _dropped("a", "record [0]", "image_markers"),
        _dropped("c", "record [3]"), _dropped("c", "record [4]"), _dropped(None, "record [5]"),
    ]
    found = find_duplicates(loaded, dropped)
    # The loaded sample keeps "a" although its record comes later: it is the one that trains.
    assert [(d.sample_id, d.record, d.first, d.index, d.source) for d in found] == [
        ("a", "record [0]", "record [1]", None, SOURCE), ("c", "record [4]", "record [3]", None, SOURCE),
    ]


def test_llava_json_says_where_each_sample_and_each_dropped_record_is(tmp_path: Path) -> None:
    records = [
        {"id": "a", "conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Yo."}]},
        {"id": "a", "conversations": [{"from": "human", "value": "Hi?"}]},
    ]
    (tmp_path / "d.json").write_text(json.dumps(records))
    with collecting_problems() as found:
        samples = LlavaJSONFormat(LlavaJSONOptions(path=str(tmp_path / "d.json"))).load()
    assert [s.origin for s in samples] == ["record [0]"]
    assert [(p.sample_id, p.record) for p in found] == [("a", "record [1]")]
