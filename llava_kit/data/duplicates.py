"""One id, one sample: of the samples a data set loads with the same id, the first keeps it.

The skip policy leaves bad samples out by id, and evaluators key their results by id, so an
id must name one sample. A repeated id is a data problem of its own (``duplicate_id``),
found here on the loaded samples, so every data format, a plugin's too, is covered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llava_kit.data.formats.problems import SampleProblem
from llava_kit.data.sample import Sample


@dataclass(frozen=True)
class DuplicateId:
    """A record whose id an earlier loaded sample (or earlier dropped record) already has."""

    sample_id: str
    record: str  # where this record is: "record [5]", or "loaded sample [5]"
    first: str  # where the record that keeps the id is
    index: int | None  # its place among the loaded samples; None: its reader dropped it
    source: Path | None  # the file of a dropped record; None for a loaded sample

    @property
    def message(self) -> str:
        return f"{self.record}: id already used by {self.first}; give every sample its own id"


def sample_location(sample: Sample, index: int) -> str:
    """Where ``sample`` is in its data file, else its place among the loaded samples."""
    return sample.origin or f"loaded sample [{index}]"


def first_of_each_id(samples: Sequence[Sample]) -> list[Sample]:
    """``samples`` without the later ones of each repeated id, so every id names one sample."""
    seen: set[str] = set()
    kept: list[Sample] = []
    for sample in samples:
        if sample.id not in seen:
            seen.add(sample.id)
            kept.append(sample)
    return kept


def find_duplicates(samples: Sequence[Sample], dropped: Sequence[SampleProblem]) -> list[DuplicateId]:
    """Every record with an id taken before it: by a loaded sample first, then by the records
    its reader dropped (``dropped``: the problems they were dropped for)."""
    first: dict[str, str] = {}
    found: list[DuplicateId] = []
    for index, sample in enumerate(samples):
        here = sample_location(sample, index)
        if sample.id in first:
            found.append(DuplicateId(sample.id, here, first[sample.id], index, None))
        else:
            first[sample.id] = here
    # A dropped record may have several problems: it counts once.
    records: dict[tuple[Path, str], str] = {}
    for problem in dropped:
        if problem.sample_id is not None:
            records.setdefault((problem.source, problem.record or problem.where), problem.sample_id)
    for (source, here), sample_id in records.items():
        if sample_id in first:
            found.append(DuplicateId(sample_id, here, first[sample_id], None, source))
        else:
            first[sample_id] = here
    return found
