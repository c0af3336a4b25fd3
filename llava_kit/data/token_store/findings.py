"""What a store's build found wrong with the data, saved with it (``problems.json``) so
that the data check reads it instead of reading and tokenizing everything again.

Records the reader dropped, unknown record keys, repeated ids, and per loaded sample its
text problems (answers, image markers) and why it has no tokens, if it has none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llava_kit.data.duplicates import DuplicateId
from llava_kit.data.formats.fields import UnknownField
from llava_kit.data.formats.problems import SampleProblem
from llava_kit.errors import DataError

FILE = "problems.json"


@dataclass(frozen=True)
class StoredTokenProblem:
    kind: str
    message: str  # as the data check lists it
    error: str  # the message of what direct tokenization raises for the sample
    hint: str | None

    def as_error(self) -> DataError:
        return DataError(self.error, hint=self.hint)


@dataclass
class Findings:
    dropped: list[SampleProblem] = field(default_factory=list)
    unknown: list[UnknownField] = field(default_factory=list)
    duplicates: list[DuplicateId] = field(default_factory=list)
    # Sample index -> (kind, message) of its answers and image markers.
    text: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    # Sample index -> why it has no tokens.
    tokens: dict[int, StoredTokenProblem] = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        (folder / FILE).write_text(json.dumps({
            "dropped": [_problem_row(p) for p in self.dropped],
            "unknown": [[str(u.source), u.sample_id, u.message] for u in self.unknown],
            "duplicates": [[d.sample_id, d.record, d.first, d.index,
                            None if d.source is None else str(d.source)] for d in self.duplicates],
            "text": [[index, kind, message] for index, found in sorted(self.text.items())
                     for kind, message in found],
            "tokens": [[index, p.kind, p.message, p.error, p.hint]
                       for index, p in sorted(self.tokens.items())],
        }), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> Findings:
        raw = json.loads((folder / FILE).read_text(encoding="utf-8"))
        found = cls(
            dropped=[_problem(row) for row in raw["dropped"]],
            unknown=[UnknownField(Path(source), sample_id, message)
                     for source, sample_id, message in raw["unknown"]],
            duplicates=[DuplicateId(sample_id, record, first, index,
                                    None if source is None else Path(source))
                        for sample_id, record, first, index, source in raw["duplicates"]],
            tokens={index: StoredTokenProblem(kind, message, error, hint)
                    for index, kind, message, error, hint in raw["tokens"]},
        )
        for index, kind, message in raw["text"]:
            found.text.setdefault(index, []).append((kind, message))
        return found

    def is_current(self) -> bool:
        """False when a missing file the build reported has appeared since (or a missing
        image was reported without saying where: it cannot be looked at again)."""
        for problem in self.dropped:
            if problem.kind == "missing_image" and not problem.absent:
                return False
            if any(path.exists() for path in problem.absent):
                return False
        return True


def _problem_row(problem: SampleProblem) -> list[Any]:
    return [problem.kind, str(problem.source), problem.where, problem.message, problem.sample_id,
            problem.record, [str(path) for path in problem.absent]]


def _problem(row: list[Any]) -> SampleProblem:
    kind, source, where, message, sample_id, record, absent = row
    return SampleProblem(kind, Path(source), where, message, sample_id, record,
                         tuple(Path(path) for path in absent))
