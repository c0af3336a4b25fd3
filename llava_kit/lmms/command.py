"""``llava-kit eval lmms``: lmms-eval tasks on a finished run directory or export; results
under its results folder, the table in its report.md."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llava_kit.errors import LlavaKitError
from llava_kit.evaluators.base import refuse_overwrite
from llava_kit.lmms import require_lmms_eval
from llava_kit.lmms.evaluator import JUDGE_CACHE, RESULTS_FOLDER
from llava_kit.lmms.judge import JudgeSettings
from llava_kit.lmms.runner import RESULTS_FILE, TaskResults, TaskRun


def judge_settings(url: str | None, model: str | None, key_env: str | None
                   ) -> JudgeSettings | None:
    """The judge the command line names, or None when it names none."""
    if url is None and model is None and key_env is None:
        return None
    if url is None or model is None:
        raise LlavaKitError("--judge-url and --judge-model go together",
                            hint="give both (and --judge-key-env VAR when the server needs a "
                            "key), or none of the judge options")
    return JudgeSettings(url=url, model=model, key_env=key_env)


def evaluate_run(
    run_dir: Path, run: TaskRun, *, name: str, force: bool
) -> tuple[TaskResults, dict[str, Path]]:
    """Run the tasks on the run's model; returns the results and the files written."""
    require_lmms_eval()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise LlavaKitError(f"--name {name!r} cannot name a folder",
                            hint="use letters, digits, '_', '-' and '.'")
    from llava_kit.lmms.report import section, write_section
    from llava_kit.lmms.runner import prepare_tasks, run_tasks
    from llava_kit.loading import open_model
    from llava_kit.train.run_dir import RunDir

    layout = RunDir(run_dir)
    folder = layout.results / RESULTS_FOLDER / name
    refuse_overwrite([folder / RESULTS_FILE], force=force, elsewhere="--name NAME")
    if run.judge is not None:
        run = replace(run, judge=replace(run.judge, cache=folder / JUDGE_CACHE))
    prepared = prepare_tasks(run)  # the tasks and the judge checked before the model loads
    opened = open_model(run_dir)
    outcome = run_tasks(opened.model, opened.template, run,
                        image_position=opened.recipe.model.image_position, prepared=prepared)
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
    judge = outcome.results.get("judge")
    if judge is not None:
        reviews = f"; its reviews: {files['judge']}" if "judge" in files else ""
        console.print(f"judge: {judge['model']} at {judge['url']}{reviews}")
        if judge["failed"]:
            first = next(review["error"] for review in outcome.reviews if "error" in review)
            console.print(
                f"[yellow]{judge['failed']} judge request(s) failed for good (the first: "
                f"{escape(first)}); those questions are left out of the scores. Run the same "
                "command again with --force to ask them again (answered ones come from the "
                "cache)[/yellow]")
    console.print(f"results: {files['results']}; table: {report}")
