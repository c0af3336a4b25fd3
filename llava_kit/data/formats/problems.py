"""Problems found in data files: kept per record while a collector is active, else raised together.

Every problem carries its ``kind`` from where it is found, so the data check groups and
counts problems without reading their text.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, get_args

from llava_kit.errors import DataError

# What a reader can find wrong with a record; the data check lists each kind under a heading.
ProblemKind = Literal[
    "bad_record",
    "missing_image",
    "outside_image_root",
    "no_answer",
    "image_markers",
    "empty_answer",
    "duplicate_id",
]
PROBLEM_KINDS: frozenset[str] = frozenset(get_args(ProblemKind))
# Enough lines to see the pattern of what is wrong without flooding the terminal.
MAX_LISTED_PROBLEMS = 20


@dataclass(frozen=True)
class SampleProblem:
    """One bad record, kept (instead of raised) while ``collecting_problems`` is active."""

    kind: ProblemKind
    source: Path
    where: str
    message: str
    sample_id: str | None
    # The record's own location ("record [3]") when ``where`` is a longer label.
    record: str | None = None
    # Files whose absence is the problem (a missing image's path): if one appears, the
    # finding is out of date, so whatever remembers it (the token store) must look again.
    absent: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        # An unknown kind would be left out of the data check's report: fail where it is made.
        if self.kind not in PROBLEM_KINDS:
            raise ValueError(
                f"unknown problem kind {self.kind!r}; use one of {', '.join(sorted(PROBLEM_KINDS))}"
            )


# Set by `llava-kit data check` and the skip policy: problems are gathered, bad records dropped.
_collector: ContextVar[list[SampleProblem] | None] = ContextVar("problem_collector", default=None)


@contextmanager
def collecting_problems() -> Iterator[list[SampleProblem]]:
    """Within this block, readers drop bad records and list them here instead of raising."""
    found: list[SampleProblem] = []
    token = _collector.set(found)
    try:
        yield found
    finally:
        _collector.reset(token)


def collect_problem(problem: SampleProblem) -> bool:
    """Hand ``problem`` to an active collector; False when none is active (raise instead)."""
    collector = _collector.get()
    if collector is None:
        return False
    collector.append(problem)
    return True


@dataclass
class Problems:
    """Every problem found in one data file, raised together as one DataError."""

    source: Path
    entries: list[SampleProblem] = field(default_factory=list)
    # location label -> sample id, so a collected problem names its sample.
    ids: dict[str, str] = field(default_factory=dict)
    # location label -> the record's location in the file, so records can be told apart
    # even when two of them share an id.
    records: dict[str, str] = field(default_factory=dict)

    def add(self, where: str, message: str, kind: ProblemKind = "bad_record", *,
            absent: tuple[Path, ...] = ()) -> None:
        """Record one problem; most are malformed records, the rest say their kind."""
        self.entries.append(SampleProblem(
            kind, self.source, where, message, self.ids.get(where), self.records.get(where),
            absent,
        ))

    def __len__(self) -> int:
        return len(self.entries)

    def raise_if_any(self) -> None:
        if not self.entries:
            return
        if _collector.get() is not None:
            for entry in self.entries:
                collect_problem(entry)
            return
        count = len(self.entries)
        listed = [f"  {p.where}: {p.message}" for p in self.entries[:MAX_LISTED_PROBLEMS]]
        if count > MAX_LISTED_PROBLEMS:
            listed.append(f"  ... and {count - MAX_LISTED_PROBLEMS} more")
        noun = "problem" if count == 1 else "problems"
        raise DataError(
            f"{self.source}: {count} {noun} in the data file:\n" + "\n".join(listed),
            hint="fix or remove the records listed; records are counted from 0, lines from 1",
        )
