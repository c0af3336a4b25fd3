"""Problems of data files: raised together, or collected with their kind and sample id."""

from __future__ import annotations

from pathlib import Path

import pytest

from llava_kit.data.formats.problems import (
    PROBLEM_KINDS,
    Problems,
    SampleProblem,
    collect_problem,
    collecting_problems,
)
from llava_kit.datacheck.report import KINDS
from llava_kit.errors import DataError

SOURCE = Path("d.json")


def _two_problems() -> Problems:
    problems = Problems(SOURCE)
    problems.ids["sample 'a' (record [0])"] = "a"
    problems.add("sample 'a' (record [0])", "image 'x.png' not found", "missing_image")
    problems.add("record [1]", "missing 'id'")
    return problems


def test_without_a_collector_every_problem_is_raised_at_once() -> None:
    with pytest.raises(DataError) as caught:
        _two_problems().raise_if_any()
    assert caught.value.message == (
        "d.json: 2 problems in the data file:\n"
        "  sample 'a' (record [0]): image 'x.png' not found\n"
        "  record [1]: missing 'id'"
    )


def test_a_collector_keeps_each_problem_with_its_kind_and_sample() -> None:
    with collecting_problems() as found:
        _two_problems().raise_if_any()
    assert found == [
        SampleProblem("missing_image", SOURCE, "sample 'a' (record [0])",
                      "image 'x.png' not found", "a"),
        SampleProblem("bad_record", SOURCE, "record [1]", "missing 'id'", None),
    ]
    assert collect_problem(found[0]) is False  # the block has ended: raise instead


def test_an_unknown_kind_is_refused_where_the_problem_is_made() -> None:
    with pytest.raises(ValueError, match="unknown problem kind 'typo'"):
        Problems(SOURCE).add("record [0]", "x", "typo")  # type: ignore[arg-type]


def test_every_kind_a_reader_can_give_has_a_heading_in_the_data_check() -> None:
    assert PROBLEM_KINDS <= set(KINDS)
