"""A run's trackers: metrics.jsonl and those of ``runtime.trackers``, fed every record the
run logs, on rank 0 only.

The other trackers each run on a thread of their own (``background.py``). A tracker run
lives as long as the llava-kit run: started when training starts, given the results and
files when they exist, finished (as failed if the run raised) when it ends.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llava_kit.errors import LlavaKitError
from llava_kit.train.metrics import read_metrics
from llava_kit.train.report import StageSummary
from llava_kit.train.run import read_summary
from llava_kit.train.run_dir import RunDir
from llava_kit.trackers.background import BackgroundTracker
from llava_kit.trackers.base import Point, TrackerRun
from llava_kit.trackers.jsonl import JsonlTracker
from llava_kit.trackers.state import read_state, write_state
from llava_kit.trackers.timeline import Timeline
from llava_kit.trackers.values import summary_values

if TYPE_CHECKING:
    from llava_kit.recipes.schema import Recipe
    from llava_kit.train.context import RunContext

log = logging.getLogger("llava_kit")


class RunTrackers:
    """The run's metrics log: each record goes to metrics.jsonl, then, as a point on the
    run's step axis, to every other tracker."""

    def __init__(
        self, log_file: JsonlTracker, others: list[BackgroundTracker], timeline: Timeline
    ) -> None:
        self._log_file = log_file
        self._others = others
        self._timeline = timeline

    def log(self, record: dict[str, Any]) -> None:
        point = self._timeline.point(record)
        # The run's own record: its failures (a full disk) are the run's, as they always were.
        self._log_file.log(point)
        if point.values:
            for tracker in self._others:
                tracker.log(point)

    def results(
        self, stages: Sequence[StageSummary], evaluations: dict[str, dict[str, float]],
        files: Sequence[Path],
    ) -> None:
        """Stage summaries and final evaluations as summary values, and the run's files."""
        values = summary_values(stages, evaluations)
        for tracker in self._others:
            tracker.summary(values, self._timeline.step)
            for path in files:
                if path.is_file():
                    tracker.artifact(path)

    def close(self, ok: bool) -> None:
        for tracker in self._others:
            tracker.close(ok)


@contextlib.contextmanager
def open_trackers(ctx: "RunContext", group: str | None = None) -> Iterator[RunTrackers | None]:
    """Rank 0's trackers for the body (None on other ranks); ``group`` is the grid's name
    when the run is a grid cell."""
    if not ctx.dist.is_main:
        yield None
        return
    trackers = _start(ctx.recipe, ctx.layout, group)
    ok = False
    try:
        yield trackers
        ok = True
    finally:
        trackers.close(ok)


def _start(recipe: "Recipe", layout: RunDir, group: str | None) -> RunTrackers:
    timeline = Timeline(list(recipe.enabled_stages), functools.partial(_finished_steps, layout))
    config = recipe.model_dump(mode="json")
    log_file = JsonlTracker(JsonlTracker.Options())
    log_file.start(TrackerRun(recipe.name, group, layout, config))
    specs = [spec for spec in recipe.runtime.trackers
             if not issubclass(spec.entry.component, JsonlTracker)]
    history = _history(layout, timeline) if specs else []
    others = []
    for spec in specs:
        run = TrackerRun(recipe.name, group, layout, config, read_state(layout, spec.name))
        try:
            tracker = spec.entry.component(spec.options)
        except Exception as exc:  # noqa: BLE001 - a tracker never stops the training
            log.warning("tracker %s could not be created (%s: %s); the run goes on without it",
                        spec.name, type(exc).__name__, exc)
            continue
        saved = functools.partial(write_state, layout, spec.name)
        others.append(BackgroundTracker(spec.name, tracker, run, history, saved))
    return RunTrackers(log_file, others, timeline)


def _history(layout: RunDir, timeline: Timeline) -> list[Point]:
    """The points metrics.jsonl holds from before this start, placed on the axis."""
    if not layout.metrics.is_file():
        return []
    try:
        records = read_metrics(layout.metrics)
    except LlavaKitError as exc:
        log.warning("trackers start without the earlier steps: %s", exc.message)
        return []
    points = [timeline.point(record) for record in records]
    return [point for point in points if point.values]


def _finished_steps(layout: RunDir, stage: str) -> int | None:
    stage_dir = layout.stage(stage)
    if not stage_dir.has_summary():
        return None
    try:
        return read_summary(stage_dir.summary).steps
    except LlavaKitError:
        return None
