"""What reading one data set found, put into the check's report: unknown record keys, the
records its reader dropped, and repeated ids (whether it was just read or its token store
remembers it)."""

from __future__ import annotations

from collections.abc import Sequence

from llava_kit.data.duplicates import DuplicateId
from llava_kit.data.formats.fields import UnknownField
from llava_kit.data.formats.problems import SampleProblem
from llava_kit.datacheck.report import CheckReport


def report_reading(
    report: CheckReport, where: str, source: str, dropped: Sequence[SampleProblem],
    unknown: Sequence[UnknownField], duplicates: Sequence[DuplicateId],
) -> frozenset[int]:
    """Add the findings to ``report``; returns the places of the loaded samples whose id an
    earlier sample has."""
    for field in unknown:
        report.add("unknown_field", where, field.source, field.sample_id, field.message)
    for problem in dropped:
        report.add(problem.kind, where, problem.source, problem.sample_id,
                   f"{problem.where}: {problem.message}" if problem.sample_id is None
                   else problem.message, record=problem.record or problem.where)
    for duplicate in duplicates:
        report.add("duplicate_id", where, duplicate.source or source, duplicate.sample_id,
                   duplicate.message, record=duplicate.record)
    # Dropped records count as checked (once each), so the report's bad-of-checked adds up.
    report.samples[where] += len({
        (p.source, p.record or p.where) for p in dropped if p.sample_id is not None
    })
    return frozenset(d.index for d in duplicates if d.index is not None)
