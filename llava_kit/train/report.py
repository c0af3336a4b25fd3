"""report.md: what each stage did, how its loss went (loss.png), and the evaluators' tables.

Metric records count ``step`` within their stage; the plot puts the stages end to end on a
global step axis, in the order of the ``stages`` passed in.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from llava_kit.train.metrics import read_metrics
from llava_kit.atomic_files import atomic_write_bytes, atomic_write_text
from llava_kit.train.run_dir import RunDir


@dataclass(frozen=True)
class StageSummary:
    name: str
    steps: int
    epochs: float
    samples: int
    final_loss: float
    tail_loss: float  # mean loss over the last 10% of the stage's steps
    tokens_per_s: float
    samples_per_s: float
    seconds: float
    trainable_params: int
    total_params: int


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; cells are ``str()``-ed and pipes escaped."""
    for number, row in enumerate(rows):
        if len(row) != len(headers):
            raise ValueError(f"row {number} has {len(row)} cells for {len(headers)} headers")
    lines = [
        _markdown_row(headers),
        "| " + " | ".join("---" for _ in headers) + " |",
        *(_markdown_row(row) for row in rows),
    ]
    return "\n".join(lines) + "\n"


def _markdown_row(cells: Sequence[Any]) -> str:
    text = (str(cell).replace("|", "\\|").replace("\n", "<br>") for cell in cells)
    return "| " + " | ".join(text) + " |"


def print_table(
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    console: Console | None = None,
) -> None:
    table = Table(title=title)
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    (console or Console()).print(table)


def loss_series(records: list[dict[str, Any]], stage: str) -> list[tuple[int, float]]:
    """(step, loss) of one stage in step order; a step logged twice (resumed run) keeps its
    last value."""
    by_step = {
        int(record["step"]): float(record["loss"])
        for record in records
        if record.get("stage") == stage and record.get("loss") is not None and "step" in record
    }
    return sorted(by_step.items())


def write_report(
    run_dir: Path,
    *,
    recipe_name: str,
    stages: list[StageSummary],
    sections: list[str],
    metrics_path: Path,
) -> Path:
    """Writes run_dir/report.md (and loss.png when any loss was logged); returns the report."""
    layout = RunDir(run_dir)
    recipe_line = f"- Recipe: `{recipe_name}`"
    if layout.resolved_recipe.is_file():
        resolved = layout.resolved_recipe.name
        recipe_line += f" (resolved: [{resolved}]({resolved}))"
    parts = [f"# Run report: {recipe_name}\n", recipe_line + "\n"]
    if stages:
        parts.append("## Training\n")
        parts += [_stage_section(stage) for stage in stages]
        records = read_metrics(metrics_path) if metrics_path.is_file() else []
        if _plot_losses(layout.loss_plot, records, stages):
            parts.append(f"## Loss\n\n![training loss per stage]({layout.loss_plot.name})\n")
        else:
            parts.append("## Loss\n\nNo loss values were logged.\n")
    parts += [section if section.endswith("\n") else section + "\n" for section in sections]
    path = layout.report
    atomic_write_text(path, "\n".join(parts))
    return path


def _stage_section(stage: StageSummary) -> str:
    share = stage.trainable_params / stage.total_params if stage.total_params else 0.0
    rows = [
        ("steps", f"{stage.steps:,}"),
        ("epochs", f"{stage.epochs:.2f}"),
        ("samples", f"{stage.samples:,}"),
        ("final loss", f"{stage.final_loss:.4f}"),
        ("mean loss, last 10% of steps", f"{stage.tail_loss:.4f}"),
        ("tokens/s", f"{stage.tokens_per_s:,.1f}"),
        ("samples/s", f"{stage.samples_per_s:,.2f}"),
        ("wall time", str(timedelta(seconds=round(stage.seconds)))),
        (
            "trainable / total params",
            f"{stage.trainable_params:,} / {stage.total_params:,} ({share:.2%})",
        ),
    ]
    return f"### Stage `{stage.name}`\n\n" + render_table(["metric", "value"], rows)


def global_loss_series(
    records: list[dict[str, Any]], stages: list[StageSummary]
) -> dict[str, list[tuple[int, float]]]:
    """Each stage's finite (global step, loss) points, stages laid end to end in order."""
    series: dict[str, list[tuple[int, float]]] = {}
    offset = 0
    for stage in stages:
        points = [
            (offset + step, loss)
            for step, loss in loss_series(records, stage.name)
            if math.isfinite(loss)
        ]
        if points:
            series[stage.name] = points
        offset += stage.steps
    return series


def _plot_losses(path: Path, records: list[dict[str, Any]], stages: list[StageSummary]) -> bool:
    """Draws one line per stage; False (and no file written) when there is nothing to draw."""
    series = global_loss_series(records, stages)
    if not series:
        return False
    figure = Figure(figsize=(7, 4), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, points in series.items():
        steps, losses = zip(*points, strict=True)
        axes.plot(steps, losses, label=name, marker="o" if len(points) == 1 else None)
    axes.set_xlabel("global step")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
    return True
