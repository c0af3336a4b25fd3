"""``llava-kit eval lmms``: lmms-eval tasks on a finished run directory or export; results
under its results folder, the table in its report.md."""

from __future__ import annotations

import re
from pathlib import Path

from rich.console import Console
from rich.table import Table

from llava_kit.errors import LlavaKitError
from llava_kit.evaluators.base import refuse_overwrite
from llava_kit.lmms import require_lmms_eval
from llava_kit.lmms.evaluator import RESULTS_FOLDER
from llava_kit.lmms.runner import RESULTS_FILE, TaskResults, TaskRun


def evaluate_run(
    run_dir: Path, run: TaskRun, *, name: str, force: bool
) -> tuple[TaskResults, dict[str, Path]]:
    """Run the tasks on the run's model; returns the results and the files written."""
    require_lmms_eval()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise LlavaKitError(f"--name {name!r} cannot name a folder",
                            hint="use letters, digits, '_', '-' and '.'")
    from llava_kit.lmms.report import section, write_section
    from llava_kit.lmms.runner import run_tasks
    from llava_kit.loading import open_model
    from llava_kit.train.run_dir import RunDir

    layout = RunDir(run_dir)
    folder = layout.results / RESULTS_FOLDER / name
    refuse_overwrite([folder / RESULTS_FILE], force=force, elsewhere="--name NAME")
    opened = open_model(run_dir)
    outcome = run_tasks(opened.model, opened.template, run,
                        image_position=opened.recipe.model.image_position)
    files = outcome.write(folder)
    shown = files["results"].relative_to(run_dir)
    write_section(layout.report, name, section(name, outcome, shown))
    return outcome, files


def print_outcome(outcome: TaskResults, files: dict[str, Path], report: Path) -> None:
    table = Table(title="lmms-eval")
    for header in ("task", "metric", "value"):
        table.add_column(header)
    for key, value in outcome.metrics.items():
        table.add_row(*key.split("/", 1), f"{value:.4g}")
    console = Console()
    console.print(table)
    console.print(f"results: {files['results']}; table: {report}")
