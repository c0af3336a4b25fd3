"""A stage's checkpoints: step checkpoints while it trains (with every rank's optimizer
partition and RNG stream, so a resume continues exactly), and what it leaves when it
finishes (final weights and the connector the next stage starts from)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from llava_kit.errors import ModelError
from llava_kit.model.vlm import LlavaModel
from llava_kit.train.backend import Backend
from llava_kit.train.checkpoint import (
    capture_rng_state, is_complete, latest_checkpoint, load_checkpoint, prune_checkpoints,
    restore_rng_state, save_checkpoint, save_connector, step_checkpoint_dir,
)
from llava_kit.train.context import RunContext
from llava_kit.train.distributed import barrier, gather_to_main
from llava_kit.train.freeze import PARTS
from llava_kit.train.stage_weights import load_stage_weights
from llava_kit.train.trained_model import apply_finished_stage

if TYPE_CHECKING:
    from pathlib import Path

    from llava_kit.recipes.schema import StageSpec


class StageCheckpoints:
    def __init__(self, ctx: RunContext, model: LlavaModel, name: str, stage: "StageSpec") -> None:
        self.ctx = ctx
        self.model = model
        self.name = name
        self.stage = stage
        self.dir = ctx.layout.stage(name)

    def step_dir(self, step: int) -> "Path":
        return step_checkpoint_dir(self.dir.path, step)

    def has_step(self, step: int) -> bool:
        return is_complete(self.step_dir(step))

    def latest(self) -> "Path | None":
        return latest_checkpoint(self.dir.path)

    def save_step(self, backend: Backend, step: int, samples_seen: int) -> None:
        """Every rank calls this (ZeRO gathers are collectives); rank 0 writes."""
        weights = self._trainable_weights(backend)
        # Under ZeRO each rank holds its own optimizer partition and RNG stream: rank 0
        # writes them all, so every rank can take its own back on --resume.
        per_rank = gather_to_main((backend.optimizer_state(), capture_rng_state()))
        if self.ctx.dist.is_main:
            state = {"step": step, "samples_seen": samples_seen,
                     "rng": [rng for _, rng in per_rank]}
            save_checkpoint(
                self.step_dir(step), weights=weights,
                optimizer={"ranks": [optimizer for optimizer, _ in per_rank]}, trainer_state=state,
            )
            prune_checkpoints(self.dir.path, keep=self.stage.keep_checkpoints)
        barrier()

    def resume(self, backend: Backend) -> int:
        """Load the newest step checkpoint, if any; returns the step to continue from."""
        path = self.latest()
        if path is None:
            return 0
        checkpoint = load_checkpoint(path, verified=True)  # latest() checked it
        ranks = len(checkpoint.trainer_state["rng"])
        if ranks != self.ctx.dist.world_size:
            raise ModelError(
                f"{path} was written by {ranks} process(es) but this run has "
                f"{self.ctx.dist.world_size}",
                hint="resume with the same number of processes (--nproc)",
            )
        rank = self.ctx.dist.rank
        load_stage_weights(self.model, checkpoint.weights, path)
        if checkpoint.optimizer is not None:
            backend.load_optimizer_state(checkpoint.optimizer["ranks"][rank])
        restore_rng_state(checkpoint.trainer_state["rng"][rank])
        return int(checkpoint.trainer_state["step"])

    def save_final(self, backend: Backend) -> None:
        weights = self._trainable_weights(backend)
        connector = {k.removeprefix("connector."): v
                     for k, v in backend.trainable_state_dict(self.model, "connector.").items()}
        if self.ctx.dist.is_main:
            # The connector goes first: a complete final checkpoint implies it exists.
            save_connector(self.dir.connector, connector, self._connector_meta())
            save_checkpoint(
                self.dir.final, weights=weights, optimizer=None, trainer_state={"stage": self.name},
                beside=(self.dir.connector.name,),
            )
        barrier()  # the next stage, on every rank, reads what rank 0 just wrote

    def load_final(self) -> None:
        """Apply the finished stage's weights (LoRA adapters first, if it trained them)."""
        apply_finished_stage(self.model, self.stage, self.dir.final)

    def _trainable_weights(self, backend: Backend) -> dict[str, torch.Tensor]:
        names = {n for n, p in self.model.named_parameters() if p.requires_grad}
        trainable_parts = [part for part in PARTS if any(
            p.requires_grad for p in getattr(self.model, part).parameters()
        )]
        weights: dict[str, torch.Tensor] = {}
        for part in trainable_parts:
            weights.update(backend.trainable_state_dict(self.model, prefix=f"{part}."))
        return {name: tensor for name, tensor in weights.items() if name in names}

    def _connector_meta(self) -> dict[str, Any]:
        spec = self.ctx.recipe.model.connector
        return {
            "connector": spec.name,
            "options": spec.options.model_dump(mode="json"),
            "vision_dim": self.model.connector.vision_dim,
            "llm_dim": self.model.connector.llm_dim,
        }
