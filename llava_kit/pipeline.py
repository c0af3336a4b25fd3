"""A whole run of a recipe: train its stages, evaluate the trained model, write the report.

The path of a run: ``training_run`` checks the data and opens the run directory as its one
writer, ``train_stages`` trains (per-epoch evaluation plugs into the stage loop as a hook),
then rank 0 runs the recipe's evaluations and writes report.md. On rank 0 every metric
record goes to metrics.jsonl and the recipe's trackers (``trackers/``), which also get the
results and the report's files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from llava_kit.evaluators.suite import evaluate_model
from llava_kit.trackers.run_trackers import open_trackers
from llava_kit.train.distributed import barrier
from llava_kit.train.hooks import StageHook, StageLoop, StepEnd
from llava_kit.train.report import StageSummary, write_report
from llava_kit.train.run import training_run, train_stages
from llava_kit.train.trained_model import load_trained_model
from llava_kit.train.zero3 import is_zero3_partitioned

if TYPE_CHECKING:
    from llava_kit.recipes.schema import Recipe


@dataclass
class RunResult:
    """What a run produced. Only the main process evaluates: on other ranks ``metrics``
    stays empty."""

    run_dir: Path
    stages: list[StageSummary]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # by evaluation name


class EpochEvaluation(StageHook):
    """``eval_every_epoch``: the recipe's evaluations on the model as trained so far; their
    metrics go to metrics.jsonl with the epoch, their files under epoch_eval/<stage>-<epoch>."""

    def after_epoch(self, loop: StageLoop, at: StepEnd) -> None:
        ctx = loop.ctx
        if ctx.dist.is_main and not is_zero3_partitioned(loop.model):
            out = ctx.layout.epoch_eval(at.stage, at.finished_epoch or 0)
            suite = evaluate_model(ctx.recipe, loop.model, out)
            for name, metrics in suite.metrics.items():
                ctx.metrics.log({"stage": at.stage, "epoch": at.finished_epoch, "eval": name,
                                 **metrics})
        barrier()


def run_recipe(
    recipe: "Recipe", *, recipe_yaml: str, run_dir: Path, resume: bool = False,
    evaluate: bool = True, tracker_group: str | None = None,
) -> RunResult:
    """Train and (unless ``evaluate`` is off) evaluate ``recipe`` into ``run_dir``.

    ``tracker_group`` groups the run's tracker runs with others (a grid's cells)."""
    with training_run(recipe, recipe_yaml=recipe_yaml, run_dir=run_dir, resume=resume) as (
        ctx, model,
    ), open_trackers(ctx, tracker_group) as trackers:
        if trackers is not None:  # rank 0: metrics.jsonl and the recipe's trackers
            ctx = dataclasses.replace(ctx, metrics=trackers)

        def stage_hooks(name: str) -> list[StageHook]:
            wanted = evaluate and recipe.eval and recipe.stages[name].eval_every_epoch
            return [EpochEvaluation()] if wanted else []

        summaries, model = train_stages(ctx, model, stage_hooks)
        barrier()
        result = RunResult(run_dir, summaries)
        if not ctx.dist.is_main:
            return result  # rank 0 evaluates and reports alone
        sections: list[str] = []
        if evaluate and recipe.eval:
            if is_zero3_partitioned(model):
                # Sharded weights cannot run a forward pass on one rank: rebuild from the checkpoints.
                model = load_trained_model(recipe, run_dir).to(ctx.device)
            suite = evaluate_model(recipe, model, run_dir)
            result.metrics = suite.metrics
            sections = suite.report_sections
        report = write_report(run_dir, recipe_name=recipe.name, stages=summaries,
                              sections=sections, metrics_path=ctx.layout.metrics)
        if trackers is not None:
            layout = ctx.layout
            trackers.results(summaries, result.metrics,
                             [layout.resolved_recipe, report, layout.loss_plot])
        return result
