"""One tracker on a thread of its own: a slow tool (a server that stopped answering) never
holds up a training step, and a failing one is one warning, then left out of the run."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from llava_kit.trackers.base import Point, Tracker, TrackerRun
from llava_kit.trackers.step_filter import StepFilter

log = logging.getLogger("llava_kit")

# Points a tracker may fall behind by before it is dropped (memory stays bounded).
MAX_BEHIND = 10_000
# How long the end of a run waits for a tracker to send what it holds and close.
FINISH_TIMEOUT_S = 120.0
_STOP = object()

Job = Callable[[], None]


class BackgroundTracker:
    """Runs ``tracker`` for ``run`` on its own thread, every call in order.

    ``history`` holds the points logged before this start (a resumed run, or stages a grid
    cell took from the store): a tracker that continues its earlier run holds them, a new
    one is sent them first. ``saved(state)`` keeps the tracker's state once it started, and
    forgets it (``{}``) when it fails: its tool run misses steps, so the next start opens a
    new one, sent them all.
    """

    def __init__(
        self, name: str, tracker: Tracker, run: TrackerRun, history: Sequence[Point],
        saved: Callable[[dict], None],
    ) -> None:
        self.name = name
        self.tracker = tracker
        self.failed = False
        self._saved = saved
        self._filter = StepFilter()
        self._jobs: queue.Queue[Job | object] = queue.Queue(MAX_BEHIND)
        self._warned = threading.Lock()
        self._thread = threading.Thread(target=self._work, name=f"tracker-{name}", daemon=True)
        self._put(lambda: self._start(run, history))
        self._thread.start()

    def log(self, point: Point) -> None:
        self._put(lambda: self._send(point))

    def summary(self, values: dict[str, float], step: int) -> None:
        self._put(lambda: self.tracker.summary(values, step))

    def artifact(self, path: Path) -> None:
        self._put(lambda: self.tracker.artifact(path))

    def close(self, ok: bool, timeout: float = FINISH_TIMEOUT_S) -> None:
        """Finish the tracker's run and wait (at most ``timeout`` seconds) for the thread."""
        self._put(lambda: self.tracker.finish(ok))
        if self._put(_STOP, wait=timeout):
            self._thread.join(timeout)
        if self._thread.is_alive():
            self._fail(f"it did not finish within {timeout:g} s; what it had not sent "
                       "yet is missing from it")

    def _start(self, run: TrackerRun, history: Sequence[Point]) -> None:
        continued = self.tracker.start(run)
        self._saved(run.state)
        for point in history:
            if continued:
                self._filter.admit(point)  # held already: only marks where the tool stands
            else:
                self._send(point)

    def _send(self, point: Point) -> None:
        fresh = self._filter.admit(point)
        if fresh is not None:
            self.tracker.log(fresh)

    def _put(self, job: Job | object, *, wait: float | None = None) -> bool:
        """Queue ``job`` (waiting up to ``wait`` seconds for room); False if it was not."""
        if self.failed and job is not _STOP:
            return False
        try:
            self._jobs.put(job, block=wait is not None, timeout=wait)
        except queue.Full:
            self._fail(f"it fell {MAX_BEHIND} points behind the training")
            return False
        return True

    def _work(self) -> None:
        while (job := self._jobs.get()) is not _STOP:
            if self.failed:
                continue  # drain: a failed tracker gets nothing more
            try:
                job()  # type: ignore[operator]
            except Exception as exc:  # noqa: BLE001 - a tracker never stops the training
                self._fail(f"{type(exc).__name__}: {exc}")
                with contextlib.suppress(Exception):  # close what it opened, quietly
                    self.tracker.finish(False)

    def _fail(self, why: str) -> None:
        with self._warned:
            if self.failed:
                return
            self.failed = True
        with contextlib.suppress(OSError):
            self._saved({})
        first_line = why.strip().splitlines()[0] if why.strip() else why
        log.warning("tracker %s stopped logging: %s; the run goes on without it",
                    self.name, first_line)
