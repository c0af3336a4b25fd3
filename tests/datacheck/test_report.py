"""Counting bad samples by record, and the ids the skip policy may drop."""

from __future__ import annotations

import json
from pathlib import Path

from llava_kit.datacheck.report import CheckReport


def _report() -> CheckReport:
    report = CheckReport()
    where = "stages.s"
    report.samples[where] = 5
    # Two loaded samples share id "a": the first has an empty answer, the second repeats it.
    report.add("empty_answer", where, "d.json", "a", "empty", record="record [0]", drop_by_id=True)
    report.add("truncated", where, "d.json", "a", "long", record="record [0]", drop_by_id=True)
    report.add("duplicate_id", where, "d.json", "a", "record [3]: id already used by record [0]",
               record="record [3]")
    # A record its reader dropped shares the id of a good loaded sample "b".
    report.add("missing_image", where, "d.json", "b", "missing", record="record [4]")
    report.add("unknown_field", where, "d.json", "c", "note", record="record [2]")
    return report


def test_bad_samples_are_counted_by_record_not_by_id() -> None:
    assert _report().bad_samples("stages.s") == 3


def test_only_problems_of_samples_that_keep_their_id_are_dropped_by_id() -> None:
    assert _report().ids_to_drop("stages.s") == {"a"}
    errors = {p.sample_id for p in _report().errors
              if p.where == "stages.s" and p.sample_id is not None}
    assert errors == {"a", "b"}  # every id with an error, dropped by id or not


def test_skipped_samples_list_each_problem_with_its_record(tmp_path: Path) -> None:
    path = _report().write_skipped(tmp_path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["sample_id"], r["kind"], r["record"]) for r in rows] == [
        ("a", "empty_answer", "record [0]"), ("a", "truncated", "record [0]"),
        ("a", "duplicate_id", "record [3]"), ("b", "missing_image", "record [4]"),
    ]
    assert set(rows[0]) == {"kind", "where", "source", "sample_id", "message", "record"}
