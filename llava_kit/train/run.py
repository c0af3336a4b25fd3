"""Training a whole recipe: open the run directory as its one writer, then train each
enabled stage in order (skipping, on resume, the stages that finished)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from llava_kit.atomic_files import atomic_write_text
from llava_kit.datacheck.policy import preflight, skipped_ids
from llava_kit.devices import resolve_device, resolve_precision
from llava_kit.errors import DataError, RecipeError
from llava_kit.json_io import read_json
from llava_kit.model.build import build_model
from llava_kit.model.vlm import LlavaModel
from llava_kit.recipes.changes import check_resume_recipe
from llava_kit.recipes.deepspeed_presets import NO_DEEPSPEED
from llava_kit.train.checkpoint import check_connector_file
from llava_kit.train.context import RunContext
from llava_kit.train.distributed import barrier, init_distributed
from llava_kit.train.hooks import StageHook
from llava_kit.train.metrics import MetricsLogger
from llava_kit.train.report import StageSummary
from llava_kit.train.run_dir import RunDir, prepare_run_dir, write_resolved_recipe
from llava_kit.train.runner import StageRunner
from llava_kit.train.trained_model import load_trained_model

if TYPE_CHECKING:
    from llava_kit.recipes.schema import Recipe

log = logging.getLogger("llava_kit")

# The extra hooks of one stage (per-epoch evaluation, for one), by stage name.
StageHooks = Callable[[str], Sequence[StageHook]]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy

        numpy.random.seed(seed)
    except ImportError:
        pass


@contextlib.contextmanager
def training_run(
    recipe: "Recipe", *, recipe_yaml: str, run_dir: Path, resume: bool = False
) -> Iterator[tuple[RunContext, LlavaModel]]:
    """The run's context and freshly built model, with the run directory prepared and held
    by rank 0 (its one writer) for the body.

    Bad data, a wrong tokenizer or a model that does not build stop the run before its
    directory exists. Every rank checks: the answer is the same and needs no messages.
    """
    runtime = recipe.runtime
    dist = init_distributed(single_process_group=runtime.deepspeed != NO_DEEPSPEED)
    if dist.world_size > 1 and runtime.deepspeed == NO_DEEPSPEED:
        raise RecipeError(
            f"runtime.deepspeed is none but {dist.world_size} processes are running; without "
            "DeepSpeed their replicas would not share gradients",
            hint="set runtime.deepspeed to zero2, zero3 or zero3_offload (or run one process)",
        )
    device = resolve_device(runtime.device, dist.local_rank)
    checked = preflight(recipe)
    for stage in recipe.enabled_stages.values():  # a user's file to start from, header only
        if stage.init_connector_from is not None:
            check_connector_file(Path(stage.init_connector_from))
    skip = runtime.on_bad_sample == "skip"
    seed_everything(runtime.seed)
    model = build_model(recipe.model).to(device)
    layout = RunDir(run_dir)
    with contextlib.ExitStack() as writer:
        if dist.is_main:
            prepare_run_dir(run_dir, resume=resume)
            if resume:  # checked before anything is touched, the lock file included
                resolved = layout.resolved_recipe
                check_resume_recipe(resolved.read_text(encoding="utf-8"), recipe_yaml, str(resolved))
            writer.enter_context(layout.writer_lock())
            if not resume:  # a resumed run keeps the recipe and provenance of its start
                write_resolved_recipe(run_dir, recipe_yaml)
            if skip:
                checked.write_skipped(run_dir)
        barrier()
        yield RunContext(
            recipe=recipe, run_dir=run_dir, dist=dist, device=device,
            precision=resolve_precision(runtime.precision, device),
            metrics=MetricsLogger(layout.metrics, enabled=dist.is_main), resume=resume,
            skipped=skipped_ids(checked, recipe) if skip else None,
        ), model


def train_stages(
    ctx: RunContext, model: LlavaModel, stage_hooks: StageHooks = lambda name: ()
) -> tuple[list[StageSummary], LlavaModel]:
    """Run the enabled stages in order; returns their summaries and the trained model."""
    summaries: list[StageSummary] = []
    previous: str | None = None
    for name, stage in ctx.recipe.stages.items():
        if not stage.enabled:
            log.info("stage %s is disabled; skipping it", name)
            continue
        if previous is not None and ctx.recipe.runtime.deepspeed != NO_DEEPSPEED:
            # A DeepSpeed engine owns (and under ZeRO-3 partitions) the model it trained;
            # the next stage starts, as separate reference runs do, from a fresh model with
            # the finished stages' weights.
            model = load_trained_model(ctx.recipe, ctx.run_dir).to(ctx.device)
        runner = StageRunner(ctx, model, name, stage, previous, stage_hooks(name))
        stage_dir = ctx.layout.stage(name)
        if ctx.resume and stage_dir.is_reusable():
            log.info("stage %s finished earlier; reusing its weights", name)
            runner.checkpoints.load_final()
            summaries.append(read_summary(stage_dir.summary))
        else:
            summary = runner.run()
            if ctx.dist.is_main:
                atomic_write_text(stage_dir.summary, json.dumps(dataclasses.asdict(summary), indent=2))
            summaries.append(summary)
        previous = name
    return summaries, model


def read_summary(path: Path) -> StageSummary:
    record = read_json(path, hint="delete the stage's final/ and summary.json and --resume to "
                       "train it again")
    try:
        return StageSummary(**record)
    except TypeError:
        raise DataError(f"{path}: not a stage summary written by llava-kit",
                        hint="delete the stage's final/ and summary.json and --resume to "
                        "train it again") from None
