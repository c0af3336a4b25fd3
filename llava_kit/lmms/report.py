"""The report.md section of an lmms-eval evaluation: this model's row beside the LLaVA-1.5
rows on the benchmarks its tasks fill, then every metric of every task.

The section sits between two comment lines naming the evaluation, so evaluating a run
again replaces it in report.md instead of adding a second one.
"""

from __future__ import annotations

from pathlib import Path

from llava_kit.atomic_files import atomic_write_text
from llava_kit.lmms.local_tasks import LOCAL_TASKS
from llava_kit.lmms.reference import BENCHMARKS, REFERENCE_ROWS, SOURCES
from llava_kit.lmms.runner import TaskResults
from llava_kit.train.report import render_table


def section(name: str, outcome: TaskResults, results_file: Path | None = None) -> str:
    tasks = list(outcome.results.get("results", {}))
    counts = outcome.results.get("n-samples", {})
    listed = ", ".join(
        f"`{task}` ({counts[task]['effective']} documents)" if task in counts else f"`{task}`"
        for task in tasks
    )
    lines = [_begin(name), f"## lmms-eval: {name}\n", f"Tasks: {listed}."]
    if results_file is not None:
        lines.append(f"lmms-eval's results: `{results_file}`.")
    judge = outcome.results.get("judge")
    if judge is not None:
        lines.append(f"Judge: `{judge['model']}` at {judge['url']} ({judge['reviewed']} "
                     "review(s); relative score = the model's mean score / the reference "
                     "answers' x 100).")
        if judge["failed"]:
            lines.append(f"{judge['failed']} question(s) got no judge reply and are left out "
                         "of the scores.")
    if any(task in LOCAL_TASKS for task in tasks):
        lines.append("Tasks named `llava_kit_*` run on llava-kit's small synthetic data: "
                     "their numbers check the pipeline and are not comparable with the "
                     "reference rows.")
    lines.append("")
    columns = _benchmark_columns(outcome)
    if columns:
        rows = [["this model", *(value for _, value in columns)]]
        for label, values in REFERENCE_ROWS.items():
            rows.append([label, *(f"{values[BENCHMARKS.index(b)]:.1f}" for b, _ in columns)])
        lines.append(render_table(["model", *(benchmark for benchmark, _ in columns)], rows))
    metric_rows = [[*key.split("/", 1), f"{value:.4g}"] for key, value in outcome.metrics.items()]
    lines.append(render_table(["task", "metric", "value"], metric_rows))
    lines.append(_end(name))
    return "\n".join(lines)


def write_section(report: Path, name: str, text: str) -> None:
    """Put ``text`` into report.md: in place of this evaluation's earlier section, or at
    the end (a run without a report gets one holding the section alone)."""
    current = report.read_text(encoding="utf-8") if report.is_file() else ""
    begin, end = _begin(name), _end(name)
    if begin in current and end in current.split(begin, 1)[1]:
        before, rest = current.split(begin, 1)
        after = rest.split(end, 1)[1]
        updated = before + text + after
    else:
        updated = current + ("\n" if current and not current.endswith("\n") else "") + (
            "\n" if current else "") + text + "\n"
    atomic_write_text(report, updated)


def _benchmark_columns(outcome: TaskResults) -> list[tuple[str, str]]:
    """(benchmark, this model's value in the reference's unit), in the reference's order."""
    found: dict[str, str] = {}
    for task in outcome.results.get("results", {}):
        source = SOURCES.get(task)
        value = outcome.metrics.get(f"{task}/{source.metric}") if source else None
        if source is not None and value is not None:
            found[source.benchmark] = f"{value * source.scale:.1f}"
    return [(benchmark, found[benchmark]) for benchmark in BENCHMARKS if benchmark in found]


def _begin(name: str) -> str:
    return f"<!-- lmms-eval {name} -->"


def _end(name: str) -> str:
    return f"<!-- /lmms-eval {name} -->"
