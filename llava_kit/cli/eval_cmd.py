"""``llava-kit eval``: evaluate a finished run or a predictions file, and combine answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from llava_kit.evaluators.combine import Combination, OtherResults
    from llava_kit.evaluators.scienceqa_scoring import ScoredResult

eval_app = typer.Typer(
    name="eval", help="Evaluate trained runs and prediction files.", no_args_is_help=True
)


@eval_app.callback()
def _group() -> None:
    """Evaluate trained runs and prediction files."""
    # A callback keeps ``eval`` a group even while it has one command.


@eval_app.command("scienceqa")
def scienceqa_command(
    run: Path | None = typer.Option(None, "--run", help="A finished run directory to evaluate."),
    predictions: Path | None = typer.Option(
        None,
        "--predictions",
        help="Predictions to score: a JSONL of {question_id or pid, text}, or the reference "
        "scorer's result JSON {acc, correct, count, results, outputs}.",
    ),
    problems: Path | None = typer.Option(
        None,
        "--problems",
        help="ScienceQA folder (problems.json, pid_splits.json) for --predictions.",
    ),
    split: str | None = typer.Option(
        None, "--split", help="Split to score (default: the recipe's, or test)."
    ),
    root: Path | None = typer.Option(
        None, "--root", help="With --run: ScienceQA folder to use instead of the recipe's."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="With --predictions: results folder (default: the predictions file's folder).",
    ),
    combine: Path | None = typer.Option(
        None,
        "--combine",
        help="Another model's result file (results {pid: index}, outputs {pid: text}).",
    ),
    mode: str = typer.Option("complement", "--mode", help="complement or judge."),
    judge_url: str | None = typer.Option(None, "--judge-url", help="OpenAI-compatible base URL."),
    judge_model: str | None = typer.Option(None, "--judge-model"),
    judge_key_env: str | None = typer.Option(
        None, "--judge-key-env", help="NAME of the environment variable holding the judge's key."
    ),
    concurrency: int = typer.Option(4, "--concurrency", min=1),
    max_retries: int = typer.Option(5, "--max-retries", min=0),
    timeout: float = typer.Option(120.0, "--timeout", min=0.001),
    force: bool = typer.Option(
        False, "--force", help="Replace result files that already exist (never the inputs)."
    ),
) -> None:
    """ScienceQA accuracy per category: a run, a predictions file, or a combination (paper 5.2)."""
    from llava_kit.errors import LlavaKitError

    if (run is None) == (predictions is None):
        raise LlavaKitError("give exactly one of --run or --predictions")
    if run is not None:
        if combine is not None:
            raise LlavaKitError(
                "--combine works on a predictions file",
                hint=f"use --predictions {run}/results/scienceqa_<split>_predictions.jsonl "
                "--problems <ScienceQA folder>",
            )
        _evaluate_run(run, split, root, force)
        return
    assert predictions is not None
    if problems is None:
        raise LlavaKitError("--predictions needs --problems (the ScienceQA folder)")
    split = split or "test"
    results_dir = out if out is not None else predictions.parent
    if combine is None:
        _score_predictions(predictions, problems, split, results_dir, force)
        return
    _combine(
        predictions,
        problems,
        split,
        results_dir,
        combine,
        mode,
        judge_url=judge_url,
        judge_model=judge_model,
        judge_key_env=judge_key_env,
        concurrency=concurrency,
        max_retries=max_retries,
        timeout=timeout,
        force=force,
    )


@eval_app.command("lmms")
def lmms_command(
    run: Path = typer.Argument(..., help="A finished run directory or a llava-kit export."),
    tasks: str = typer.Option(..., "--tasks", help="Comma-separated lmms-eval task names."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Documents per task."),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", min=1,
                                       help="For tasks that set none."),
    include_path: list[Path] = typer.Option([], "--include-path",
                                            help="A folder of task YAMLs (repeatable)."),
    local_data: Path = typer.Option(Path("demo_data/lmms"), "--local-data",
                                    help="Where llava-kit's local tasks are generated."),
    interface: str = typer.Option("simple", "--interface", help="simple or chat."),
    name: str = typer.Option("lmms", "--name", help="Names the results folder and report section."),
    force: bool = typer.Option(False, "--force", help="Replace this name's earlier results."),
    judge_url: str | None = typer.Option(
        None, "--judge-url", help="OpenAI-compatible base URL of the judge, for judged tasks."
    ),
    judge_model: str | None = typer.Option(None, "--judge-model", help="The judge model."),
    judge_key_env: str | None = typer.Option(
        None, "--judge-key-env", help="NAME of the environment variable holding the judge's key."
    ),
) -> None:
    """lmms-eval tasks (the LLaVA-1.5 suite, or llava-kit's local ones) on a run."""
    from llava_kit.errors import LlavaKitError
    from llava_kit.lmms.command import evaluate_run, judge_settings, print_outcome
    from llava_kit.lmms.runner import TaskRun
    from llava_kit.train.run_dir import RunDir

    if interface not in ("simple", "chat"):
        raise LlavaKitError(f"--interface {interface!r} is not simple or chat")
    names = [task.strip() for task in tasks.split(",") if task.strip()]
    if not names:
        raise LlavaKitError("--tasks names no task",
                            hint="e.g. --tasks llava_kit_pope,llava_kit_mme")
    settings = TaskRun(tasks=names, include_path=include_path, local_data=local_data, limit=limit,
                       batch_size=batch_size, max_new_tokens=max_new_tokens,
                       interface=interface,  # type: ignore[arg-type]
                       judge=judge_settings(judge_url, judge_model, judge_key_env))
    outcome, files = evaluate_run(run, settings, name=name, force=force)
    print_outcome(outcome, files, RunDir(run).report)


def _evaluate_run(run: Path, split: str | None, root: Path | None, force: bool) -> None:
    from llava_kit.errors import LlavaKitError
    from llava_kit.evaluators.base import EvalContext, refuse_overwrite
    from llava_kit.evaluators.scienceqa import ScienceQAEvalOptions, ScienceQAEvaluator, result_paths
    from llava_kit.loading import open_model
    from llava_kit.train.run_dir import RunDir

    recipe_path = RunDir(run).resolved_recipe
    opened = open_model(run)
    recipe = opened.recipe
    evaluations = [(n, s) for n, s in recipe.eval.items() if s.name == "scienceqa"]
    changes = {k: v for k, v in {"split": split, "root": str(root) if root else None}.items() if v}
    if evaluations:
        name, spec = evaluations[0]
        options = spec.options.model_copy(update=changes)
    elif root is not None:
        name, options = "scienceqa", ScienceQAEvalOptions(root=str(root), split=split or "test")
    else:
        raise LlavaKitError(
            f"{recipe_path}: the recipe has no scienceqa evaluation",
            hint="give --root (the ScienceQA folder) and optionally --split",
        )
    evaluator = ScienceQAEvaluator(options)
    refuse_overwrite(result_paths(RunDir(run).results, evaluator.result_stem).values(), force=force,
                     elsewhere="a copy of the run directory")
    result = evaluator.evaluate(EvalContext(opened.model, opened.template, run, name))
    Console().print(f"results: {', '.join(result.details['files'].values())}")


def _score_predictions(
    predictions: Path, problems: Path, split: str, results_dir: Path, force: bool
) -> None:
    from llava_kit.evaluators.base import refuse_overwrite
    from llava_kit.evaluators.scienceqa import result_paths, rich_table, score_file, write_results

    stem = f"scienceqa_{split}"
    refuse_overwrite(result_paths(results_dir, stem).values(), inputs=[predictions], force=force)
    scored = score_file(predictions, problems, split)
    files = write_results(scored, results_dir, stem)
    console = Console()
    console.print(rich_table(scored, f"ScienceQA {split}: {predictions.name}"))
    console.print(f"results: {files['result']}, {files['table']}")


def _combine(
    predictions: Path,
    problems_root: Path,
    split: str,
    results_dir: Path,
    combine: Path,
    mode: str,
    *,
    judge_url: str | None,
    judge_model: str | None,
    judge_key_env: str | None,
    concurrency: int,
    max_retries: int,
    timeout: float,
    force: bool,
) -> None:
    from llava_kit.data.formats.scienceqa import read_split
    from llava_kit.data.scienceqa_prompts import problem_meta
    from llava_kit.endpoints import ChatClient, EndpointConfig, RequestCache
    from llava_kit.errors import LlavaKitError
    from llava_kit.evaluators import combine as combining
    from llava_kit.evaluators.base import refuse_overwrite
    from llava_kit.evaluators.scienceqa import result_paths, score_file, write_results

    if mode not in combining.COMBINE_MODES:
        raise LlavaKitError(
            f"--mode {mode!r} is not a combination mode",
            hint=f"use one of {', '.join(combining.COMBINE_MODES)}",
        )
    stem = f"scienceqa_{split}_{mode}"
    outputs = [*result_paths(results_dir, stem).values(), results_dir / f"{stem}_judge.jsonl"]
    refuse_overwrite(outputs, inputs=[predictions, combine], force=force)
    ours = score_file(predictions, problems_root, split)
    raw = dict(read_split(problems_root, split))
    problems = {pid: problem_meta(problem) for pid, problem in raw.items()}
    other = combining.read_other(combine)
    if mode == "complement":
        result = combining.complement(ours, other, problems)
    else:
        if not judge_url or not judge_model:
            raise LlavaKitError(
                "--mode judge needs --judge-url and --judge-model",
                hint="also --judge-key-env NAME if the endpoint needs a key",
            )
        config = EndpointConfig(
            url=judge_url,
            model=judge_model,
            key_env=judge_key_env,
            concurrency=concurrency,
            max_retries=max_retries,
            timeout_s=timeout,
        )
        client = ChatClient(config, cache=RequestCache(results_dir / f"{stem}_cache.jsonl"))
        result = combining.judge(ours, other, problems, raw, client, params={"temperature": 0.0})
    files = write_results(result.scored, results_dir, stem)
    if result.decisions:
        files["judge"] = results_dir / f"{stem}_judge.jsonl"
        files["judge"].write_text(
            "".join(json.dumps(vars(d), ensure_ascii=False) + "\n" for d in result.decisions),
            encoding="utf-8",
        )
    console = Console()
    console.print(_combination_table(ours, other, result, problems, split))
    console.print(_combination_summary(result))
    console.print(f"results: {', '.join(str(p) for p in files.values())}")
    errors = [d.error for d in result.decisions if d.error]
    if errors:
        console.print(
            f"[yellow]{len(errors)} judge request(s) failed and kept our answer (the first: "
            f"{escape(errors[0])}); run the same command again with --force to retry them "
            "(answered ones come from the cache)[/yellow]"
        )
        raise typer.Exit(1)


def _combination_table(
    ours: "ScoredResult",
    other: "OtherResults",
    result: "Combination",
    problems: dict,
    split: str,
) -> Table:
    from llava_kit.evaluators.scienceqa_scoring import score_indices
    from llava_kit.evaluators.scienceqa_scoring import CATEGORIES, PAPER_ROWS, format_score

    theirs = score_indices(other.results, {}, problems)
    table = Table(
        title=f"ScienceQA {split}: {result.mode}", box=box.SIMPLE_HEAD, show_edge=False, padding=0
    )
    table.add_column("", no_wrap=True)
    for name in CATEGORIES:
        table.add_column(name, justify="right", no_wrap=True, min_width=6)
    for label, scored in (("ours", ours), ("other", theirs), (result.mode, result.scored)):
        table.add_row(label, *(format_score(scored.table[n]) for n in CATEGORIES))
    paper = PAPER_ROWS[f"LLaVA+GPT-4 ({result.mode})"]
    table.add_row(f"paper {result.mode}", *(format_score(paper[n]) for n in CATEGORIES))
    return table


def _combination_summary(result: "Combination") -> str:
    scored = result.scored
    lines = [
        f"{result.mode}: accuracy {scored.acc:.2f}% ({scored.correct}/{scored.count}); "
        f"{result.from_other} answer(s) taken from the other model"
    ]
    if result.mode == "judge":
        lines.append(
            f"{len(result.decisions)} disagreement(s) sent to the judge; "
            f"{result.judge_failures} reply(ies) named no option and kept our answer"
        )
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
