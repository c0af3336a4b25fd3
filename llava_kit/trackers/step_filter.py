"""One value per metric and step for a tracker: a resumed run logs again the steps after
its last checkpoint, and tools either keep both values or refuse a step that goes back."""

from __future__ import annotations

import dataclasses

from llava_kit.trackers.base import Point


class StepFilter:
    """Passes the values a tracker does not hold yet, never at a step below one it holds."""

    def __init__(self) -> None:
        self._step = -1
        self._names: set[str] = set()  # the names already sent at ``_step``

    def admit(self, point: Point) -> Point | None:
        """``point`` with only its new values, or None when it has none."""
        if point.step < self._step:
            return None
        if point.step > self._step:
            self._step, self._names = point.step, set()
        fresh = {name: value for name, value in point.values.items() if name not in self._names}
        self._names.update(fresh)
        return dataclasses.replace(point, values=fresh) if fresh else None
