"""A whole run: prepare the run directory, train each enabled stage, evaluate, report."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from llava_kit.datacheck.policy import preflight, skipped_ids
from llava_kit.errors import RecipeError
from llava_kit.evaluators.base import EvalContext, EvalResult
from llava_kit.model.build import build_model, build_template, instantiate
from llava_kit.model.vlm import LlavaModel
from llava_kit.recipes.changes import check_resume_recipe
from llava_kit.train.distributed import DistributedContext, barrier, init_distributed
from llava_kit.train.metrics import MetricsLogger
from llava_kit.train.report import StageSummary, write_report
from llava_kit.train.run_dir import (
    RunDir, atomic_write_text, prepare_run_dir, write_resolved_recipe,
)
from llava_kit.train.runner import RunContext, StageRunner, is_zero3_partitioned
from llava_kit.train.trained_model import load_trained_model

if TYPE_CHECKING:
    from llava_kit.recipes.schema import Recipe, RuntimeSpec

log = logging.getLogger("llava_kit")


def resolve_device(runtime: "RuntimeSpec", dist: DistributedContext) -> torch.device:
    if runtime.device == "cpu" or (runtime.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", dist.local_rank)


def resolve_precision(runtime: "RuntimeSpec", device: torch.device) -> str:
    if runtime.precision != "auto":
        return runtime.precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy

        numpy.random.seed(seed)
    except ImportError:
        pass


def run_recipe(
    recipe: "Recipe", *, recipe_yaml: str, run_dir: Path, resume: bool = False,
    evaluate: bool = True,
) -> Path:
    """Train and evaluate ``recipe`` into ``run_dir``; returns the run directory."""
    runtime = recipe.runtime
    dist = init_distributed(single_process_group=runtime.deepspeed != "none")
    if dist.world_size > 1 and runtime.deepspeed == "none":
        raise RecipeError(
            f"runtime.deepspeed is none but {dist.world_size} processes are running; without "
            "DeepSpeed their replicas would not share gradients",
            hint="set runtime.deepspeed to zero2, zero3 or zero3_offload (or run one process)",
        )
    device = resolve_device(runtime, dist)
    # Bad data, a wrong tokenizer or a model that does not build stop the run before its
    # directory exists. Every rank checks: the answer is the same and needs no messages.
    checked = preflight(recipe)
    skip = runtime.on_bad_sample == "skip"
    seed_everything(runtime.seed)
    model = build_model(recipe.model).to(device)
    # One writer per run directory: a second `--resume` of a run still training is refused.
    with contextlib.ExitStack() as writer:
        if dist.is_main:
            prepare_run_dir(run_dir, resume=resume)
            resolved = RunDir(run_dir).resolved_recipe
            if resume:  # checked before anything is touched, the lock file included
                check_resume_recipe(resolved.read_text(encoding="utf-8"), recipe_yaml, str(resolved))
            writer.enter_context(RunDir(run_dir).writer_lock())
            if not resume:  # a resumed run keeps the recipe and provenance of its start
                write_resolved_recipe(run_dir, recipe_yaml)
            if skip:
                checked.write_skipped(run_dir)
        barrier()
        ctx = RunContext(
            recipe=recipe, run_dir=run_dir, dist=dist, device=device,
            precision=resolve_precision(runtime, device),
            metrics=MetricsLogger(RunDir(run_dir).metrics, enabled=dist.is_main), resume=resume,
            skipped=skipped_ids(checked, recipe) if skip else None,
        )
        summaries, model = train_stages(ctx, model)
        barrier()
        if not dist.is_main:
            return run_dir  # rank 0 evaluates and reports alone
        if evaluate and recipe.eval and is_zero3_partitioned(model):
            # Sharded weights cannot run a forward pass on one rank: rebuild from the checkpoints.
            model = load_trained_model(recipe, run_dir).to(device)
        results = evaluate_model(recipe, model, run_dir) if evaluate else []
        if dist.is_main:
            write_report(
                run_dir, recipe_name=recipe.name, stages=summaries,
                sections=[section for result in results for section in result.report_sections],
                metrics_path=RunDir(run_dir).metrics,
            )
        return run_dir


def train_stages(ctx: RunContext, model: LlavaModel) -> tuple[list[StageSummary], LlavaModel]:
    """Run the enabled stages in order; returns their summaries and the trained model."""
    summaries: list[StageSummary] = []
    previous: str | None = None
    for name, stage in ctx.recipe.stages.items():
        if not stage.enabled:
            log.info("stage %s is disabled; skipping it", name)
            continue
        if previous is not None and ctx.recipe.runtime.deepspeed != "none":
            # A DeepSpeed engine owns (and under ZeRO-3 partitions) the model it trained;
            # the next stage starts, as separate reference runs do, from a fresh model with
            # the finished stages' weights.
            model = load_trained_model(ctx.recipe, ctx.run_dir).to(ctx.device)
        runner = StageRunner(ctx, model, name, stage, previous)
        summary_path = RunDir(ctx.run_dir).stage(name).summary
        if ctx.resume and runner.load_finished() and summary_path.is_file():
            log.info("stage %s finished earlier; reusing its weights", name)
            summaries.append(StageSummary(**json.loads(summary_path.read_text())))
        else:
            summary = runner.run()
            if ctx.dist.is_main:
                atomic_write_text(summary_path, json.dumps(dataclasses.asdict(summary), indent=2))
            summaries.append(summary)
        previous = name
    return summaries, model


def final_template_spec(recipe: "Recipe"):  # noqa: ANN201 - ComponentSpec
    """The template the model was last trained with is the one it answers in."""
    enabled = [stage for stage in recipe.stages.values() if stage.enabled]
    last = enabled[-1] if enabled else None
    return last.template if last is not None and last.template is not None else recipe.model.template


def evaluate_model(recipe: "Recipe", model: LlavaModel, run_dir: Path) -> list[EvalResult]:
    template = build_template(final_template_spec(recipe))
    results: list[EvalResult] = []
    for name, spec in recipe.eval.items():
        evaluator = instantiate(spec)
        results.append(evaluator.evaluate(EvalContext(model, template, run_dir, name)))
    return results
