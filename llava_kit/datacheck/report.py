"""What a data check found: problems grouped by kind, rendered as one report."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Kind -> the heading it is listed under, in the order the report shows them.
KINDS: dict[str, str] = {
    "unusable_data": "data that cannot be read at all",
    "missing_image": "missing images",
    "outside_image_root": "images outside the image root",
    "unreadable_image": "unreadable or corrupt image files",
    "bad_record": "malformed records",
    "duplicate_id": "sample ids used more than once (the first sample keeps the id)",
    "no_answer": "conversations without an assistant answer",
    "image_markers": "<image> markers that do not match the images",
    "empty_answer": "empty answers",
    "stop_in_answer": "answers holding the text that ends an answer in the chat template",
    "no_trained_tokens": "samples with no trained (unmasked) tokens",
    "template_mismatch": "answers the chat template and the tokenizer split differently",
    "truncated": "samples that max_length cuts before the first answer token",
    "unknown_field": "unknown fields in records (warnings: the readers ignore them)",
}
# Kinds that do not make a sample bad.
WARNING_KINDS = frozenset({"unknown_field"})
# Per kind, enough lines to see the pattern without flooding the terminal.
MAX_LISTED = 10


@dataclass(frozen=True)
class Problem:
    kind: str
    where: str  # "stages.finetune" or "eval.sqa"
    source: str  # the file or folder the problem is in
    sample_id: str | None  # None: the whole data set (or an unidentifiable record)
    message: str
    # Where the sample is in its source ("record [3]", "loaded sample [3]"): ids can repeat.
    record: str | None = None
    # On a loaded sample that keeps its id, so the skip policy leaves it out by that id;
    # records their reader drops and later duplicates never reach a dataset at all.
    drop_by_id: bool = False

    @property
    def is_error(self) -> bool:
        return self.kind not in WARNING_KINDS

    def line(self) -> str:
        sample = f"sample {self.sample_id!r}: " if self.sample_id is not None else ""
        return f"{self.where}: {sample}{self.message} [{self.source}]"


@dataclass
class CheckReport:
    """Every problem of every checked data set, plus how many samples each one had."""

    problems: list[Problem] = field(default_factory=list)
    samples: Counter[str] = field(default_factory=Counter)

    def add(self, kind: str, where: str, source: Path | str, sample_id: str | None,
            message: str, *, record: str | None = None, drop_by_id: bool = False) -> None:
        self.problems.append(Problem(kind, where, str(source), sample_id, message, record,
                                     drop_by_id))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    def unskippable(self) -> list[Problem]:
        """Errors no policy can skip: a whole data set is unusable, or a record has no id."""
        return [p for p in self.errors if p.sample_id is None]

    def bad_samples(self, where: str) -> int:
        """How many samples of ``where`` have at least one error (counted by record)."""
        return len({
            (p.source, p.record or p.sample_id)
            for p in self.errors if p.where == where and p.sample_id is not None
        })

    def ids_to_drop(self, where: str) -> set[str]:
        """Ids of the loaded samples of ``where`` that the skip policy leaves out."""
        return {p.sample_id for p in self.errors if p.where == where and p.drop_by_id
                and p.sample_id is not None}

    def render(self) -> str:
        """One report: a count per kind, then the listed problems of each kind."""
        if not self.problems:
            checked = ", ".join(f"{where} {count}" for where, count in self.samples.items())
            return f"data check: no problems ({checked} samples)"
        errors, warnings = len(self.errors), len(self.problems) - len(self.errors)
        bad = sum(self.bad_samples(where) for where in self.samples)
        lines = [
            f"data check: {errors} error(s), {warnings} warning(s); {bad} bad sample(s) of "
            f"{sum(self.samples.values())} checked"
        ]
        for kind, heading in KINDS.items():
            found = [p for p in self.problems if p.kind == kind]
            if not found:
                continue
            lines.append(f"{heading} ({len(found)}):")
            lines += [f"  {p.line()}" for p in found[:MAX_LISTED]]
            if len(found) > MAX_LISTED:
                lines.append(f"  ... and {len(found) - MAX_LISTED} more")
        return "\n".join(lines)

    def write_skipped(self, run_dir: Path) -> Path:
        """skipped_samples.jsonl: one line per skipped sample and reason."""
        from llava_kit.atomic_files import atomic_write_text
        from llava_kit.train.run_dir import RunDir

        rows = [
            json.dumps({key: value for key, value in asdict(p).items() if key != "drop_by_id"},
                       sort_keys=True)
            for p in self.errors if p.sample_id is not None
        ]
        path = RunDir(run_dir).skipped_samples
        atomic_write_text(path, "".join(f"{row}\n" for row in rows))
        return path
