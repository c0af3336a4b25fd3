"""``jsonl``: metrics.jsonl, the run's own record of every step (always on; the report, the
grid and the other trackers' history read it)."""

from __future__ import annotations

from llava_kit.train.metrics import MetricsLogger
from llava_kit.trackers.base import Point, Tracker, TrackerRun


class JsonlTracker(Tracker):
    """metrics.jsonl in the run directory: every record as it is logged (always on)."""

    def start(self, run: TrackerRun) -> bool:
        self._logger = MetricsLogger(run.layout.metrics)
        return True  # the file is its own history

    def log(self, point: Point) -> None:
        # Records as logged, a resumed step twice included (its readers keep the last).
        self._logger.log(point.record)
