"""grid.md / grid.json: one row per cell with its overrides, metrics and delta to the
baseline (the paper's ablation table), a bar chart, and accuracy-vs-epoch curves when the
stages evaluated every epoch."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from llava_kit.grid.plan import FAILED, OK, STOPPED, cell_dir, read_cell_record
from llava_kit.grid.spec import Grid
from llava_kit.train.metrics import read_metrics
from llava_kit.train.report import render_table
from llava_kit.atomic_files import atomic_write_bytes, atomic_write_text
from llava_kit.train.run_dir import RunDir

GRID_MD = "grid.md"
GRID_JSON = "grid.json"
BARS_PNG = "grid.png"
CURVES_PNG = "grid_curves.png"
PRIMARY = "acc"  # ScienceQA's Avg; other evaluators: their first metric
_ERROR_CHARS = 160


def primary_metric(metrics: dict[str, float]) -> str | None:
    if PRIMARY in metrics:
        return PRIMARY
    return next(iter(metrics), None)


def collect(grid: Grid, grid_dir: Path) -> list[dict[str, Any]]:
    """Each cell's record (cell.json), or a ``not run`` stub, in grid order."""
    records = []
    for cell in grid.cells:
        record = read_cell_record(grid_dir, cell.name) or {
            "cell": cell.name, "status": "not run", "metrics": {}, "stages": {}, "error": None,
        }
        record["overrides"] = cell.overrides
        records.append(record)
    return records


def with_deltas(records: list[dict[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """Adds ``delta[eval][metric]`` = cell - baseline for every metric both have."""
    base = next((r for r in records if r["cell"] == baseline), None)
    base_metrics = base["metrics"] if base and base["status"] == OK else {}
    for record in records:
        record["delta"] = {
            name: {
                metric: value - base_metrics[name][metric]
                for metric, value in metrics.items()
                if metric in base_metrics.get(name, {})
            }
            for name, metrics in record["metrics"].items()
        }
    return records


def write_grid_report(grid: Grid, grid_dir: Path) -> tuple[Path, str]:
    """Writes grid.md, grid.json and the plots; returns grid.md's path and its text."""
    records = with_deltas(collect(grid, grid_dir), grid.baseline)
    evals = _eval_names(records)
    parts = [f"# Grid report: {grid.name}\n", f"Base recipe: `{grid.base}`; deltas are "
             f"against `{grid.baseline}`.\n"]
    for name in evals:
        parts.append(f"## {name}\n\n" + eval_table(records, name, grid.baseline))
    failed = [r for r in records if r["status"] in (FAILED, STOPPED)]
    if failed:
        parts.append("## Cells that did not finish\n\n" + "\n".join(
            f"- `{r['cell']}`: {r['error']}" for r in failed) + "\n")
    if _plot_bars(grid_dir / BARS_PNG, records, evals, grid.baseline):
        parts.append(f"![primary metric per cell]({BARS_PNG})\n")
    if _plot_curves(grid_dir / CURVES_PNG, grid, grid_dir):
        parts.append(f"![accuracy per epoch]({CURVES_PNG})\n")
    text = "\n".join(parts)
    atomic_write_text(grid_dir / GRID_MD, text)
    atomic_write_text(grid_dir / GRID_JSON, json.dumps({
        "grid": grid.name, "base": str(grid.base), "baseline": grid.baseline, "cells": records,
    }, indent=2) + "\n")
    return grid_dir / GRID_MD, text


def eval_table(records: list[dict[str, Any]], name: str, baseline: str) -> str:
    """| cell | changes | Avg | delta | other metrics... | stages |, one row per cell."""
    metric_names: list[str] = []
    for record in records:
        for metric in record["metrics"].get(name, {}):
            if metric not in metric_names:
                metric_names.append(metric)
    primary = primary_metric(dict.fromkeys(metric_names, 0.0))
    others = [m for m in metric_names if m != primary]
    label = "Avg" if primary == PRIMARY else (primary or "metric")
    headers = ["cell", "changes", label, "delta", *others, "stages"]
    rows = []
    for record in records:
        changes = ", ".join(f"{k}={json.dumps(v)}" for k, v in record["overrides"].items())
        stages = ", ".join(f"{stage} {what}" for stage, what in record["stages"].items())
        metrics = record["metrics"].get(name, {})
        if record["status"] != OK or primary not in metrics:
            error = (record.get("error") or "")[:_ERROR_CHARS]
            status = record["status"] + (f": {error}" if error else "")
            rows.append([record["cell"], changes or "-", status, "-", *("-" for _ in others),
                         stages or "-"])
            continue
        delta = record["delta"].get(name, {}).get(primary)
        shown_delta = "-" if record["cell"] == baseline or delta is None else f"{delta:+.2f}"
        rows.append([record["cell"], changes or "-", f"{metrics[primary]:.2f}", shown_delta,
                     *(_number(metrics.get(m)) for m in others), stages or "-"])
    return render_table(headers, rows)


def summary_rows(grid: Grid, grid_dir: Path) -> tuple[list[str], list[list[str]]]:
    """A narrow table for the terminal: cell, each evaluation's primary metric and delta."""
    records = with_deltas(collect(grid, grid_dir), grid.baseline)
    evals = _eval_names(records)
    headers = ["cell", *(f"{name} {_label(records, name)}" for name in evals),
               *(f"{name} delta" for name in evals), "stages"]
    rows = []
    for record in records:
        values, deltas = [], []
        for name in evals:
            metrics = record["metrics"].get(name, {})
            metric = primary_metric(metrics)
            delta = record["delta"].get(name, {}).get(metric) if metric else None
            values.append(_number(metrics.get(metric)) if metric else record["status"])
            is_base = record["cell"] == grid.baseline
            deltas.append("-" if delta is None or is_base else f"{delta:+.2f}")
        stages = ", ".join(f"{stage} {what}" for stage, what in record["stages"].items())
        rows.append([record["cell"], *values, *deltas, stages or record["status"]])
    return headers, rows


def _label(records: list[dict[str, Any]], name: str) -> str:
    metric = next((primary_metric(r["metrics"][name]) for r in records if name in r["metrics"]),
                  None)
    return "Avg" if metric == PRIMARY else (metric or "")


def epoch_curves(records: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """``<stage>/<eval>`` -> (epoch, primary metric) points, from the eval_every_epoch records."""
    curves: dict[str, dict[float, float]] = {}
    for record in records:
        if "eval" not in record or "epoch" not in record:
            continue
        metric = primary_metric({k: v for k, v in record.items()
                                 if k not in ("stage", "epoch", "eval", "time")})
        if metric is None:
            continue
        key = f"{record.get('stage')}/{record['eval']}"
        curves.setdefault(key, {})[float(record["epoch"])] = float(record[metric])
    return {key: sorted(points.items()) for key, points in curves.items()}


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _eval_names(records: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for record in records:
        names += [name for name in record["metrics"] if name not in names]
    return names


def _plot_bars(path: Path, records: list[dict[str, Any]], evals: list[str], baseline: str) -> bool:
    if not evals:
        return False
    figure = Figure(figsize=(7, 2.8 * len(evals) + 0.6), dpi=120)
    FigureCanvasAgg(figure)
    for index, name in enumerate(evals, start=1):
        axes = figure.add_subplot(len(evals), 1, index)
        cells, values = [], []
        for record in records:
            metrics = record["metrics"].get(name, {})
            metric = primary_metric(metrics)
            if record["status"] == OK and metric is not None:
                cells.append(record["cell"])
                values.append(metrics[metric])
        colors = ["tab:orange" if cell == baseline else "tab:blue" for cell in cells]
        bars = axes.bar(cells, values, color=colors)
        axes.bar_label(bars, fmt="%.1f", fontsize=8)
        axes.set_title(name)
        axes.set_ylabel("Avg accuracy (%)")
        axes.tick_params(axis="x", labelrotation=20)
        axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    _save(figure, path)
    return True


def _plot_curves(path: Path, grid: Grid, grid_dir: Path) -> bool:
    figure = Figure(figsize=(7, 4), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    drawn = False
    for cell in grid.cells:
        metrics = RunDir(cell_dir(grid_dir, cell.name)).metrics
        if not metrics.is_file():
            continue
        curves = epoch_curves(read_metrics(metrics))
        for key, points in curves.items():
            epochs, values = zip(*points, strict=True)
            label = cell.name if len(curves) == 1 else f"{cell.name} {key}"
            axes.plot(epochs, values, marker="o", label=label)
            drawn = True
    if not drawn:
        return False
    axes.set_xlabel("epoch")
    axes.set_ylabel("accuracy (%)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    _save(figure, path)
    return True


def _save(figure: Figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
