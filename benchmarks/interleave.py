"""Interleaved, repeated timings and the verdict they support.

Two timings taken one after the other carry whatever else the machine did meanwhile on one
side only. Here every round times each contender once, in an order that rotates from round
to round (AB, BA, ...), after untimed warm-up rounds. A figure is the median of the
per-round ratios with their inter-quartile range; a verdict is "met" only when the whole
range clears the target, "not met" when it lies wholly on the wrong side, else "undecided".

On a CPU the timers count CPU seconds (``cpu_seconds``) of single-threaded workers: the
work itself, without the time other processes held the core, which a shared machine adds
to wall time at random. On a GPU they count wall time (the host waits for the device).
"""

from __future__ import annotations

import resource
import statistics
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

Timer = Callable[[], float]  # does one unit of work, returns its seconds


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its children that have ended."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def interleave(timers: Mapping[str, Timer], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per round for every timer; all timers run once per round, order rotating."""
    names = list(timers)
    for _ in range(warmup):
        for name in names:
            timers[name]()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(timers[name]())
    return seconds


@dataclass(frozen=True)
class Spread:
    """Median and inter-quartile range of per-round values."""

    median: float
    low: float
    high: float
    rounds: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Spread":
        if len(values) < 2:
            raise ValueError("a spread needs at least two rounds")
        low, middle, high = statistics.quantiles(values, n=4, method="inclusive")
        return cls(middle, low, high, len(values))

    def text(self, unit: str = "x", digits: int = 2) -> str:
        """``1.02x [0.98-1.05], 9 rounds``; unit ``%`` shows fractions as percentages."""
        scale = 100 if unit == "%" else 1

        def show(value: float) -> str:
            return f"{value * scale:.{digits}f}"

        return f"{show(self.median)}{unit} [{show(self.low)}-{show(self.high)}], {self.rounds} rounds"


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> Spread:
    """The spread of round-by-round ratios (both series from the same rounds)."""
    if len(numerators) != len(denominators):
        raise ValueError("ratios pair values of the same rounds")
    return Spread.of([a / b for a, b in zip(numerators, denominators)])


def verdict(spread: Spread, target: float, higher_is_better: bool = True) -> str:
    """met / not met / undecided: the inter-quartile range against the target."""
    good, bad = (spread.low >= target, spread.high < target) if higher_is_better else (
        spread.high <= target, spread.low > target)
    return "met" if good else "not met" if bad else "undecided"


def combined(verdicts: Sequence[str]) -> str:
    """One row with several targets: met when all are, not met when any is not."""
    if "not met" in verdicts:
        return "not met"
    return "met" if all(v == "met" for v in verdicts) else "undecided"
