"""The tracker contract: what an experiment tracker is given during a run.

A run opens one tracker run per tracker of ``runtime.trackers`` (and ``jsonl``, the run's
own metrics.jsonl, always), on rank 0 only. Each tracker gets ``start`` once, ``log`` for
every point on the run's one step axis, ``summary`` and ``artifact`` once the run has its
results, and ``finish`` once.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from llava_kit.components import NoOptions, Options
from llava_kit.train.run_dir import RunDir


@dataclass(frozen=True)
class TrackerRun:
    """The llava-kit run a tracker follows."""

    name: str  # the recipe's name (a grid cell's recipe is named <recipe>-<cell>)
    group: str | None  # the grid's name for a grid cell, None for a single run
    layout: RunDir  # the run directory; a tracker's local files go under it
    config: dict[str, Any]  # the resolved recipe
    # What the tracker keeps between the starts of this run (the tool's run id, never a
    # key); saved in the run directory after ``start``.
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Point:
    """Metric values at one step of the run's axis (every stage's steps end to end)."""

    step: int
    values: dict[str, float]  # e.g. pretrain/loss, finetune/lr, finetune/eval/test/acc
    record: dict[str, Any]  # the metrics.jsonl record the values come from


class Tracker:
    """Base class of experiment trackers; the first docstring line is their description.

    Only ``start`` and ``log`` must be written. A tracker may raise: llava-kit warns once,
    drops that tracker and trains on.
    """

    Options: ClassVar[type[Options]] = NoOptions
    # Modules the tracker imports and the command that installs them: a recipe naming the
    # tracker is refused at validate time while one is missing, not hours into a run.
    requires: ClassVar[tuple[str, ...]] = ()
    install: ClassVar[str] = ""

    def __init__(self, options: Options) -> None:
        self.options = options

    @classmethod
    def missing_modules(cls) -> list[str]:
        return [module for module in cls.requires if importlib.util.find_spec(module) is None]

    def start(self, run: TrackerRun) -> bool:
        """Open the tool's run, or reopen the one ``run.state`` names; True when it continues
        an earlier one, which already holds the points logged before (they are not sent
        again). A new run is sent them first."""
        raise NotImplementedError

    def log(self, point: Point) -> None:
        """Record ``point.values`` at ``point.step``; steps never go back."""
        raise NotImplementedError

    def summary(self, values: dict[str, float], step: int) -> None:
        """The run's results (stage summaries, final evaluations); ``step`` is its last."""

    def artifact(self, path: Path) -> None:
        """A file of the run: loss.png, report.md, recipe.resolved.yaml."""

    def finish(self, ok: bool) -> None:
        """Close the tool's run; ``ok`` is False when the llava-kit run failed."""
