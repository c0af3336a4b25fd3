"""metrics.jsonl: one JSON object per optimizer step, appended and flushed as it happens.

Records carry at least ``stage``, ``step`` (counted within the stage), ``loss``, ``lr``,
``grad_norm``, ``tokens_per_s``, ``samples_per_s``, ``epoch``; the logger adds ``time``
(Unix seconds). A resumed run appends to the same file, so a step may appear twice: readers
that need one value per step keep the last one (see ``report.loss_series``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Protocol

from llava_kit.errors import LlavaKitError
from llava_kit.json_io import read_text

logger = logging.getLogger("llava_kit")

_TAIL_BYTES = 1 << 20  # far longer than any one record


class MetricsLog(Protocol):
    """Where a run's records go: metrics.jsonl alone, or with the run's trackers."""

    def log(self, record: dict[str, Any]) -> None: ...


class MetricsLogger:
    """Appends records to ``path``; a disabled logger (non-zero ranks) writes nothing."""

    def __init__(self, path: Path, enabled: bool = True) -> None:
        self.path = path
        self.enabled = enabled
        if enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            _drop_torn_line(path)

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        line = json.dumps({**record, "time": record.get("time", time.time())}, default=_plain)
        # Opening per line keeps no handle across forks/crashes, and each line reaches the file
        # as soon as it is logged.
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()


def _drop_torn_line(path: Path) -> None:
    """A run killed mid-write leaves a line without its newline; appending after it would glue
    the next record onto it, so a resumed run cuts it off first."""
    if not path.is_file():
        return
    with open(path, "r+b") as handle:
        size = handle.seek(0, 2)
        start = max(0, size - _TAIL_BYTES)
        handle.seek(start)
        tail = handle.read()
        if not tail or tail.endswith(b"\n"):
            return
        logger.warning("%s: dropping the unfinished last line left by an interrupted run", path)
        handle.truncate(start + tail.rfind(b"\n") + 1)


def _plain(value: Any) -> Any:
    """Tensors and numpy scalars become Python numbers."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"metrics value of type {type(value).__name__} is not JSON serializable")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records in file order. A torn last line (the run was killed mid-write) is skipped."""
    lines = read_text(path, hint="the metrics file was edited or damaged; restore or delete it"
                      ).splitlines()
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):
                logger.warning("%s: ignoring the unfinished last line %d", path, number)
                break
            raise LlavaKitError(
                f"{path} line {number} is not valid JSON ({exc.msg})",
                hint="the metrics file was edited or damaged; fix or delete that line",
            ) from exc
        if not isinstance(record, dict):
            raise LlavaKitError(
                f"{path} line {number} is not a JSON object",
                hint="the metrics file was edited or damaged; fix or delete that line",
            )
        records.append(record)
    return records
