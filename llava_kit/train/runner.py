"""Training one stage of a recipe: set it up, resume, loop over optimizer steps with hooks,
save what it leaves, summarise."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from llava_kit.data.collate import Collator
from llava_kit.model.vlm import LlavaModel
from llava_kit.recipes.deepspeed_presets import NO_DEEPSPEED
from llava_kit.train import step as train_step
from llava_kit.train.backend import Backend
from llava_kit.train.context import RunContext
from llava_kit.train.hooks import PeriodicCheckpoints, StageHook, StepEnd, StopOnSignal
from llava_kit.train.progress import StageProgress
from llava_kit.train.report import StageSummary
from llava_kit.train.signals import StopRequest, log_skipped_step, non_finite_loss, out_of_memory
from llava_kit.train.stage_checkpoints import StageCheckpoints
from llava_kit.train.stage_setup import prepare_stage

if TYPE_CHECKING:
    from llava_kit.recipes.schema import StageSpec


class StageRunner:
    """Trains ``model`` for one stage; resumable from the stage's newest checkpoint.

    ``hooks`` run, on every rank, after each epoch and each optimizer step, before the
    built-in step checkpoints and stop-on-signal hooks.
    """

    def __init__(
        self, ctx: RunContext, model: LlavaModel, name: str, stage: "StageSpec",
        previous_stage: str | None, hooks: Sequence[StageHook] = (),
    ) -> None:
        self.ctx = ctx
        self.model = model
        self.name = name
        self.stage = stage
        self.previous_stage = previous_stage
        self.hooks = list(hooks)
        self.checkpoints = StageCheckpoints(ctx, model, name, stage)
        self.backend: Backend | None = None

    def run(self) -> StageSummary:
        ctx = self.ctx
        prepared = prepare_stage(ctx, self.model, self.name, self.stage, self.previous_stage)
        backend = self.backend = prepared.backend
        data, setup = prepared.data, prepared.setup
        plan = data.plan
        start_step = self.checkpoints.resume(backend) if ctx.resume else 0
        collator = Collator(
            self.model.num_visual_tokens, self.model.tokenizer.pad_token_id,
            ctx.recipe.model.max_length, "right",
        )
        micro_batches = iter(data.loader(start_step, setup.total_steps, ctx.dist.rank, collator,
                                         ctx.recipe.runtime.num_workers))
        started = time.perf_counter()
        losses: list[float] = []
        samples_done = tokens_done = 0
        with StageProgress(
            self.name, setup.total_steps, enabled=ctx.dist.is_main,
            log_every=ctx.recipe.runtime.log_every,
        ) as progress, StopRequest() as stop:
            hooks = [*self.hooks, PeriodicCheckpoints(self.stage.save_every_steps), StopOnSignal(stop)]
            for step in range(start_step, setup.total_steps):
                tick = time.perf_counter()
                try:
                    result = train_step.optimizer_step(
                        prepared.engine, backend, micro_batches, plan.accumulation, ctx
                    )
                except torch.OutOfMemoryError as exc:
                    raise out_of_memory(self.name, step + 1, self.stage.batch.micro_size, exc) from exc
                loss, tokens, samples = result.loss, result.tokens, result.samples
                if not math.isfinite(loss):
                    self._non_finite_loss(loss, step + 1)
                    continue
                grad_norm = backend.step()
                seconds = time.perf_counter() - tick
                losses.append(loss)
                samples_done += samples
                tokens_done += tokens
                record = {
                    "stage": self.name, "step": step + 1, "epoch": (step + 1) / plan.steps_per_epoch,
                    "loss": loss, "lr": backend.current_lr(), "grad_norm": grad_norm,
                    "tokens_per_s": tokens / seconds, "samples_per_s": samples / seconds,
                }
                record["pad_fraction"], record["epoch_pad_fraction"] = data.padding(step, result)
                if ctx.dist.is_main:
                    ctx.metrics.log(record)
                progress.update(step + 1, record)
                at = StepEnd(self.name, step + 1, setup.total_steps, plan.steps_per_epoch,
                             samples_done)
                if at.finished_epoch is not None:
                    for hook in hooks:
                        hook.after_epoch(self, at)
                for hook in hooks:
                    hook.after_step(self, at)
        seconds = time.perf_counter() - started
        self.checkpoints.save_final(backend)
        backend.close()
        tail = losses[-max(1, len(losses) // 10):] if losses else [float("nan")]
        return StageSummary(
            name=self.name, steps=setup.total_steps, epochs=setup.total_steps / plan.steps_per_epoch,
            samples=samples_done, final_loss=losses[-1] if losses else float("nan"),
            tail_loss=sum(tail) / len(tail), tokens_per_s=tokens_done / max(seconds, 1e-9),
            samples_per_s=samples_done / max(seconds, 1e-9), seconds=seconds,
            trainable_params=prepared.trainable_params, total_params=prepared.total_params,
        )

    def _non_finite_loss(self, loss: float, step: int) -> None:
        """runtime.on_nan: stop (the last checkpoint stays) or drop this step's gradients."""
        runtime = self.ctx.recipe.runtime
        # ZeRO keeps gradients in its own partitioned buffers: only stopping is safe there.
        if runtime.on_nan == "stop" or runtime.deepspeed != NO_DEEPSPEED:
            raise non_finite_loss(self.name, step, loss, self.checkpoints.latest())
        log_skipped_step(self.name, step, loss)
        self.model.zero_grad(set_to_none=True)
