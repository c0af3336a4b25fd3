"""The run's one step axis: the enabled stages' steps end to end, in recipe order, and the
metric names a record's values take on it.

A training record ``{"stage": "finetune", "step": 3, "loss": ...}`` lands at step
3 + the steps of the stages before finetune, as ``finetune/loss``; an evaluation at an
epoch's end (``{"eval": "test", ...}``) lands at the step that ended the epoch, as
``finetune/eval/test/acc``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from llava_kit.trackers.base import Point

# Record fields that place a record rather than measure anything.
_PLACEMENT = frozenset({"stage", "step", "time", "eval"})


class Timeline:
    """Places records on the axis; ``stage_steps(stage)`` is a finished stage's step count
    (None while unknown: the highest step seen of it counts instead)."""

    def __init__(self, stages: Sequence[str], stage_steps: Callable[[str], int | None]) -> None:
        self.stages = list(stages)
        self._stage_steps = stage_steps
        self._offsets: dict[str, int] = {}
        self._highest: dict[str, int] = {}
        self.step = 0  # where the last training record landed

    def point(self, record: dict[str, Any]) -> Point:
        """The record's values at its step (none for a record of no enabled stage)."""
        stage = record.get("stage")
        if stage not in self.stages:
            return Point(self.step, {}, record)
        if "eval" in record:
            prefix, skip = f"{stage}/eval/{record['eval']}/", _PLACEMENT | {"epoch"}
        else:
            step = int(record.get("step", 0))
            self._highest[stage] = max(self._highest.get(stage, 0), step)
            self.step = self._offset(stage) + step
            prefix, skip = f"{stage}/", _PLACEMENT
        values = {
            prefix + key: float(value) for key, value in record.items()
            if key not in skip and isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        return Point(self.step, values, record)

    def _offset(self, stage: str) -> int:
        # Fixed at the stage's first record: every stage before it has finished by then.
        if stage not in self._offsets:
            before = self.stages[: self.stages.index(stage)]
            self._offsets[stage] = sum(self._steps(name) for name in before)
        return self._offsets[stage]

    def _steps(self, stage: str) -> int:
        steps = self._stage_steps(stage)
        return steps if steps is not None else self._highest.get(stage, 0)
