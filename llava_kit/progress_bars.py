"""The progress bar of long counted work (prompts answered, images decoded): count, rate
in the work's own unit, elapsed time and ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _RateColumn(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None and task.elapsed:  # too few updates for rich's own estimate
            speed = task.completed / task.elapsed
        if not speed:
            return Text(f"-- {self.unit}/s")
        return Text(f"{speed:.2f} {self.unit}/s" if speed < 100 else f"{speed:.0f} {self.unit}/s")


def counting_bar(unit: str, *, enabled: bool = True, console: Console | None = None) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        _RateColumn(unit), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        console=console, disable=not enabled,
    )
