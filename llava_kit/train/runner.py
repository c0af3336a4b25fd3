"""Training one stage of a recipe: trainable set, data, optimizer, loop, checkpoints."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import torch
import torch.distributed as torch_dist
from torch.utils.data import DataLoader

from llava_kit.data.collate import Collator
from llava_kit.data.formats.problems import collecting_problems
from llava_kit.data.dataset import ConversationDataset, tokenize_samples
from llava_kit.errors import ModelError
from llava_kit.model.build import build_template, instantiate
from llava_kit.model.vlm import LlavaModel
from llava_kit.train.backend import Backend, OptimizerSetup, PlainBackend
from llava_kit.data.feature_cache import attach_feature_cache
from llava_kit.train.batches import BatchPlan, PaddingMeter, sample_lengths
from llava_kit.train.checkpoint import (
    COMPLETE_MARKER, capture_rng_state, latest_checkpoint, load_checkpoint,
    load_connector_strict, prune_checkpoints, restore_rng_state, save_checkpoint,
    save_connector, step_checkpoint_dir,
)
from llava_kit.train.distributed import DistributedContext, barrier, gather_to_main
from llava_kit.train.freeze import PARTS, apply_trainable
from llava_kit.train.lora import apply_lora
from llava_kit.train.metrics import MetricsLogger
from llava_kit.train.optim import lr_lambda, param_groups
from llava_kit.train.progress import StageProgress
from llava_kit.train.report import StageSummary
from llava_kit.train.run_dir import RunDir
from llava_kit.train.signals import (
    StopRequest, interrupted, log_skipped_step, non_finite_loss, out_of_memory,
)

if TYPE_CHECKING:
    from llava_kit.recipes.schema import Recipe, StageSpec

@dataclass
class RunContext:
    recipe: "Recipe"
    run_dir: Path
    dist: DistributedContext
    device: torch.device
    precision: str
    metrics: MetricsLogger
    resume: bool
    # runtime.on_bad_sample: skip -> stage name -> ids the data check found bad.
    skipped: dict[str, frozenset[str]] | None = None


def make_backend(choice: str) -> Backend:
    if choice == "none":
        return PlainBackend()
    from llava_kit.train.deepspeed_backend import DeepSpeedBackend

    return DeepSpeedBackend(choice)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def connector_meta(model: LlavaModel, recipe: "Recipe") -> dict[str, Any]:
    spec = recipe.model.connector
    return {
        "connector": spec.name,
        "options": spec.options.model_dump(mode="json"),
        "vision_dim": model.connector.vision_dim,
        "llm_dim": model.connector.llm_dim,
    }


def recipe_fields(recipe: "Recipe") -> dict[str, str]:
    """The recipe choices that decide the connector's tensor shapes (for error messages)."""
    model = recipe.model
    return {
        "model.connector": f"{model.connector.name} {model.connector.options.model_dump()}",
        "model.encoder": f"{model.encoder.name} {model.encoder.options.model_dump()}",
        "model.llm": f"{model.llm.name} {model.llm.options.model_dump()}",
    }


class StageRunner:
    """Trains ``model`` for one stage; resumable from the stage's newest checkpoint."""

    def __init__(
        self, ctx: RunContext, model: LlavaModel, name: str, stage: "StageSpec",
        previous_stage: str | None,
    ) -> None:
        self.ctx = ctx
        self.model = model
        self.name = name
        self.stage = stage
        self.previous_stage = previous_stage
        self.dir = RunDir(ctx.run_dir).stage(name)
        self.field = f"stages.{name}"

    # ----------------------------------------------------------------- set-up
    def _init_connector(self) -> None:
        source = self.stage.init_connector_from
        if source is None and self.previous_stage is not None:
            source = str(RunDir(self.ctx.run_dir).stage(self.previous_stage).connector)
        if source is None:
            return
        if is_zero3_partitioned(self.model.connector):
            from safetensors.torch import load_file

            from llava_kit.train.deepspeed_backend import load_into_zero3

            load_into_zero3(self.model.connector, load_file(source), str(source))
            return
        load_connector_strict(
            self.model.connector, Path(source), recipe_fields=recipe_fields(self.ctx.recipe)
        )

    def _dataset(self) -> ConversationDataset:
        recipe = self.ctx.recipe
        template = build_template(self.stage.template or recipe.model.template)
        skip = (self.ctx.skipped or {}).get(self.name)
        if skip is None:
            samples = instantiate(self.stage.data).load()
        else:  # the readers drop bad records; the data check listed them and the rest
            with collecting_problems():
                samples = [s for s in instantiate(self.stage.data).load() if s.id not in skip]
        tokenized = tokenize_samples(
            samples, template, self.model.tokenizer,
            image_position=recipe.model.image_position, seed=recipe.runtime.seed,
        )
        return ConversationDataset(tokenized, self.model.encoder.preprocess)

    def _setup(self, plan: BatchPlan) -> OptimizerSetup:
        opt = self.stage.optimizer
        total = math.ceil(plan.steps_per_epoch * self.stage.epochs)
        if self.stage.max_steps is not None:
            total = min(total, self.stage.max_steps)
        return OptimizerSetup(
            param_groups=param_groups(
                self.model, lr=opt.lr, weight_decay=opt.weight_decay, connector_lr=opt.connector_lr
            ),
            betas=tuple(opt.betas),  # type: ignore[arg-type]
            eps=opt.eps,
            max_grad_norm=opt.max_grad_norm,
            total_steps=max(1, total),
            lr_lambda=lr_lambda(max(1, total), opt.warmup_ratio, opt.schedule),
            micro_batch_size=self.stage.batch.micro_size,
            grad_accumulation=plan.accumulation,
            precision=self.ctx.precision,
        )

    def _trainable_parts(self) -> list[str]:
        return [part for part in PARTS if any(
            p.requires_grad for p in getattr(self.model, part).parameters()
        )]

    def _trainable_weights(self, backend: Backend) -> dict[str, torch.Tensor]:
        names = {n for n, p in self.model.named_parameters() if p.requires_grad}
        weights: dict[str, torch.Tensor] = {}
        for part in self._trainable_parts():
            weights.update(backend.trainable_state_dict(self.model, prefix=f"{part}."))
        return {name: tensor for name, tensor in weights.items() if name in names}

    # ------------------------------------------------------------------ loop
    def run(self) -> StageSummary:
        ctx = self.ctx
        if self.stage.lora is not None:
            apply_lora(self.model, self.stage.lora)
        trainable = apply_trainable(
            self.model, self.stage.trainable, field=f"{self.field}.trainable",
            lora=self.stage.lora is not None,
        )
        total_params = sum(p.numel() for p in self.model.parameters())
        self._init_connector()
        if self.stage.gradient_checkpointing:
            self.model.llm.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        if ctx.recipe.runtime.compile:
            self.model.llm.compile()  # in place: parameter names (checkpoints) stay the same
        dataset = self._dataset()
        if ctx.recipe.runtime.feature_cache is not None:
            attach_feature_cache(
                dataset, self.model, ctx.recipe.runtime.feature_cache,
                autocast=lambda: autocast(ctx.device, ctx.precision), precision=ctx.precision,
                is_main=ctx.dist.is_main, sync=barrier,
            )
        batch = self.stage.batch
        lengths, has_image = sample_lengths(
            dataset.tokenized, self.model.num_visual_tokens, ctx.recipe.model.max_length
        )
        grouping = {"lengths": lengths, "has_image": has_image} if batch.group_by_length else {}
        plan = BatchPlan(
            len(dataset), batch.global_size, batch.micro_size, ctx.dist.world_size,
            ctx.recipe.runtime.seed, **grouping,  # type: ignore[arg-type]
        )
        padding = PaddingMeter(plan, lengths)
        setup = self._setup(plan)
        backend = make_backend(ctx.recipe.runtime.deepspeed)
        engine = backend.prepare(self.model, setup)
        start_step = self._resume(backend) if ctx.resume else 0

        collator = Collator(
            self.model.num_visual_tokens, self.model.tokenizer.pad_token_id,
            ctx.recipe.model.max_length, "right",
        )
        loader = DataLoader(
            dataset,
            batch_sampler=_StepSampler(plan, start_step, setup.total_steps, ctx.dist.rank),
            collate_fn=collator,
            num_workers=ctx.recipe.runtime.num_workers,
        )
        micro_batches = iter(loader)
        started = time.perf_counter()
        losses: list[float] = []
        samples_done = tokens_done = 0
        save_every = self.stage.save_every_steps
        with StageProgress(
            self.name, setup.total_steps, enabled=ctx.dist.is_main,
            log_every=ctx.recipe.runtime.log_every,
        ) as progress, StopRequest() as stop:
            for step in range(start_step, setup.total_steps):
                tick = time.perf_counter()
                try:
                    loss, tokens, samples = self._optimizer_step(
                        engine, backend, micro_batches, plan
                    )
                except torch.OutOfMemoryError as exc:
                    raise out_of_memory(self.name, step + 1, batch.micro_size, exc) from exc
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
                    "pad_fraction": padding.step(step),
                    "epoch_pad_fraction": padding.epoch(step // plan.steps_per_epoch),
                }
                if ctx.dist.is_main:
                    ctx.metrics.log(record)
                progress.update(step + 1, record)
                if self.stage.eval_every_epoch and (step + 1) % plan.steps_per_epoch == 0:
                    self._eval_epoch((step + 1) // plan.steps_per_epoch)
                if save_every and (step + 1) % save_every == 0 and step + 1 < setup.total_steps:
                    self._save_step(backend, step + 1, samples_done)
                if stop.requested(ctx.dist.world_size, ctx.device):
                    self._stop(backend, step + 1, samples_done, stop.signal_name)
        seconds = time.perf_counter() - started
        self._save_final(backend)
        backend.close()
        tail = losses[-max(1, len(losses) // 10):] if losses else [float("nan")]
        return StageSummary(
            name=self.name, steps=setup.total_steps, epochs=setup.total_steps / plan.steps_per_epoch,
            samples=samples_done, final_loss=losses[-1] if losses else float("nan"),
            tail_loss=sum(tail) / len(tail), tokens_per_s=tokens_done / max(seconds, 1e-9),
            samples_per_s=samples_done / max(seconds, 1e-9), seconds=seconds,
            trainable_params=trainable, total_params=total_params,
        )

    def _optimizer_step(
        self, engine: torch.nn.Module, backend: Backend, micro_batches: Iterator[dict[str, Any]],
        plan: BatchPlan,
    ) -> tuple[float, int, int]:
        """Forward/backward over this rank's micro batches; returns the global mean loss."""
        device = self.ctx.device
        loss_sum = torch.zeros((), device=device)
        tokens = samples = 0
        for _ in range(plan.accumulation):
            batch = next(micro_batches)
            batch.pop("ids")
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            with autocast(device, self.ctx.precision):
                loss = engine(**batch).loss
            scale = 1.0 if backend.scales_loss_for_accumulation() else 1.0 / plan.accumulation
            backend.backward(loss * scale)
            loss_sum += loss.detach().float()
            tokens += int(batch["attention_mask"].sum())
            samples += int(batch["input_ids"].shape[0])
        stats = torch.stack([loss_sum, torch.tensor(float(tokens), device=device),
                             torch.tensor(float(samples), device=device)])
        if self.ctx.dist.world_size > 1:
            torch_dist.all_reduce(stats)
        micro_count = plan.accumulation * self.ctx.dist.world_size
        return float(stats[0]) / micro_count, int(stats[1]), int(stats[2])

    def _eval_epoch(self, epoch: int) -> None:
        """eval_every_epoch: the recipe's evaluators on the model as trained so far; their
        metrics go to metrics.jsonl with the epoch (files under epoch_eval/<stage>-<epoch>)."""
        from llava_kit.train.run import evaluate_model  # run.py imports this module

        if self.ctx.dist.is_main and not is_zero3_partitioned(self.model):
            out = RunDir(self.ctx.run_dir).epoch_eval(self.name, epoch)
            results = evaluate_model(self.ctx.recipe, self.model, out)
            for name, result in zip(self.ctx.recipe.eval, results):
                self.ctx.metrics.log(
                    {"stage": self.name, "epoch": epoch, "eval": name, **result.metrics}
                )
        barrier()

    def _non_finite_loss(self, loss: float, step: int) -> None:
        """runtime.on_nan: stop (the last checkpoint stays) or drop this step's gradients."""
        runtime = self.ctx.recipe.runtime
        # ZeRO keeps gradients in its own partitioned buffers: only stopping is safe there.
        if runtime.on_nan == "stop" or runtime.deepspeed != "none":
            raise non_finite_loss(self.name, step, loss, latest_checkpoint(self.dir.path))
        log_skipped_step(self.name, step, loss)
        self.model.zero_grad(set_to_none=True)

    def _stop(self, backend: Backend, step: int, samples_seen: int, signal_name: str | None) -> None:
        """SIGTERM/SIGINT: checkpoint the finished step (unless just saved) and stop."""
        path = step_checkpoint_dir(self.dir.path, step)
        if not (path / COMPLETE_MARKER).is_file():
            self._save_step(backend, step, samples_seen)
        raise interrupted(signal_name or "a signal to another rank", self.name, step, path)

    # ----------------------------------------------------------- checkpoints
    def _save_step(self, backend: Backend, step: int, samples_seen: int) -> None:
        weights = self._trainable_weights(backend)
        # Under ZeRO each rank holds its own optimizer partition and RNG stream: rank 0
        # writes them all, so every rank can take its own back on --resume.
        per_rank = gather_to_main((backend.optimizer_state(), capture_rng_state()))
        if self.ctx.dist.is_main:
            state = {"step": step, "samples_seen": samples_seen,
                     "rng": [rng for _, rng in per_rank]}
            save_checkpoint(
                step_checkpoint_dir(self.dir.path, step), weights=weights,
                optimizer={"ranks": [optimizer for optimizer, _ in per_rank]}, trainer_state=state,
            )
            prune_checkpoints(self.dir.path, keep=self.stage.keep_checkpoints)
        barrier()

    def _resume(self, backend: Backend) -> int:
        path = latest_checkpoint(self.dir.path)
        if path is None:
            return 0
        checkpoint = load_checkpoint(path)
        ranks = len(checkpoint.trainer_state["rng"])
        if ranks != self.ctx.dist.world_size:
            raise ModelError(
                f"{path} was written by {ranks} process(es) but this run has "
                f"{self.ctx.dist.world_size}",
                hint="resume with the same number of processes (--nproc)",
            )
        rank = self.ctx.dist.rank
        self._load_weights(checkpoint.weights, path)
        if checkpoint.optimizer is not None:
            backend.load_optimizer_state(checkpoint.optimizer["ranks"][rank])
        restore_rng_state(checkpoint.trainer_state["rng"][rank])
        return int(checkpoint.trainer_state["step"])

    def _load_weights(self, weights: dict[str, torch.Tensor], source: Path) -> None:
        load_stage_weights(self.model, weights, source)

    def _save_final(self, backend: Backend) -> None:
        weights = self._trainable_weights(backend)
        connector = {k.removeprefix("connector."): v
                     for k, v in backend.trainable_state_dict(self.model, "connector.").items()}
        if self.ctx.dist.is_main:
            # The connector goes first: a complete final checkpoint implies it exists.
            save_connector(
                self.dir.connector, connector, connector_meta(self.model, self.ctx.recipe)
            )
            save_checkpoint(
                self.dir.final, weights=weights, optimizer=None,
                trainer_state={"stage": self.name},
            )
        barrier()  # the next stage, on every rank, reads what rank 0 just wrote

    def load_finished(self) -> bool:
        """On resume: if this stage already finished, load its weights and report True."""
        if not self.dir.is_finished():
            return False
        final = self.dir.final
        if self.stage.lora is not None:
            apply_lora(self.model, self.stage.lora)
        self._load_weights(load_checkpoint(final).weights, final)
        return True


def is_zero3_partitioned(module: torch.nn.Module) -> bool:
    """ZeRO-3 tags the parameters it manages; their local data is only a slice."""
    return any(hasattr(parameter, "ds_id") for parameter in module.parameters())


def load_stage_weights(model: LlavaModel, weights: dict[str, torch.Tensor], source: Path) -> None:
    """Load a stage's trainable weights (a subset of the model) by exact name."""
    known = dict(model.named_parameters())
    unknown = [name for name in weights if name not in known]
    if unknown:
        raise ModelError(
            f"{source}: the checkpoint holds parameters this model does not have: "
            f"{', '.join(unknown[:5])}",
            hint="resume or load with the recipe the run was trained with (recipe.resolved.yaml)",
        )
    if is_zero3_partitioned(model):
        from llava_kit.train.deepspeed_backend import load_into_zero3

        load_into_zero3(model, weights, str(source), strict=False)
        return
    model.load_state_dict(weights, strict=False)


class _StepSampler:
    """Yields this rank's micro batches for steps ``start`` .. ``stop`` (for resuming)."""

    def __init__(self, plan: BatchPlan, start: int, stop: int, rank: int) -> None:
        self.plan, self.start, self.stop, self.rank = plan, start, stop, rank

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            yield from self.plan.micro_batches(step, self.rank)

    def __len__(self) -> int:
        return (self.stop - self.start) * self.plan.accumulation
