"""The ``Backend`` for ``runtime.deepspeed`` = zero2 | zero3 | zero3_offload | a JSON file.

Gradient accumulation: the runner calls ``backward`` once per micro batch and ``step``
once per optimizer step. DeepSpeed's engine wants ``engine.step()`` after *every*
backward and decides itself, from its micro-step counter, whether this one is the
accumulation boundary (reduce, clip, update, advance the schedule, zero gradients).
So ``backward`` calls ``engine.backward`` and then ``engine.step``; ``step`` only
checks that the boundary was reached and reports the norm DeepSpeed computed there.
DeepSpeed divides each loss by the accumulation steps (``scales_loss_for_accumulation``).
"""

from __future__ import annotations

from typing import Any

import pydantic
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from llava_kit.errors import ModelError, RecipeError
from llava_kit.train.backend import Backend, OptimizerSetup
from llava_kit.train.deepspeed_configs import deepspeed_config
from llava_kit.train.distributed import init_distributed, select_deepspeed_accelerator
from llava_kit.train.zero3 import is_zero3_partitioned

select_deepspeed_accelerator()  # must precede the first deepspeed import

import deepspeed  # noqa: E402
from deepspeed.runtime.base_optimizer import ZeROOptimizer  # noqa: E402
from deepspeed.runtime.config import DeepSpeedConfig  # noqa: E402
from deepspeed.runtime.engine import DeepSpeedEngine  # noqa: E402
from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler  # noqa: E402
from deepspeed.runtime.zero.config import ZeroStageEnum  # noqa: E402
from deepspeed.utils.tensor_fragment import fragment_address  # noqa: E402

# ZeRO optimizer state holds a few DeepSpeed plain-data objects (loss scaler, stage enum,
# fragment addresses). Checkpoints stay loadable with torch.load(weights_only=True): only
# these classes are allowed in addition to what torch itself allows.
OPTIMIZER_STATE_CLASSES = (LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address)
torch.serialization.add_safe_globals(list(OPTIMIZER_STATE_CLASSES))


class DeepSpeedBackend(Backend):
    """ZeRO data parallelism over every process of the launch (one process works too)."""

    def __init__(self, config_choice: str) -> None:
        self.config_choice = config_choice
        self.config: dict[str, Any] = {}
        self.engine: DeepSpeedEngine | None = None
        self.scheduler: LambdaLR | None = None
        self._boundaries_reported = 0

    def prepare(self, model: nn.Module, setup: OptimizerSetup) -> nn.Module:
        context = init_distributed(single_process_group=True)
        self.config = deepspeed_config(
            self.config_choice, setup, context.world_size, hidden_size=widest_hidden_size(model)
        )
        check_config(self.config, self.config_choice)
        optimizer = torch.optim.AdamW(setup.param_groups, betas=setup.betas, eps=setup.eps)
        self.scheduler = LambdaLR(optimizer, setup.lr_lambda)
        engine, _, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=self.scheduler, config=self.config
        )
        self.engine = engine
        self._boundaries_reported = engine.global_steps
        return engine

    def backward(self, loss: torch.Tensor) -> None:
        engine = self._engine()
        engine.backward(loss)
        engine.step()  # a no-op except at the accumulation boundary

    def step(self) -> float:
        engine = self._engine()
        if engine.global_steps == self._boundaries_reported:
            raise RuntimeError(
                "DeepSpeedBackend.step() called before the gradient accumulation boundary: "
                f"backward() must run exactly {engine.gradient_accumulation_steps()} times per step()"
            )
        self._boundaries_reported = engine.global_steps
        norm = engine.get_global_grad_norm()
        # Only a ZeRO-less user config without clipping leaves DeepSpeed without a norm.
        return float("nan") if norm is None else float(norm)

    def scales_loss_for_accumulation(self) -> bool:
        return True

    def current_lr(self) -> float:
        assert self.scheduler is not None
        return float(self.scheduler.get_last_lr()[0])

    def trainable_state_dict(self, model: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
        """Full CPU tensors on the main rank, ``{}`` on the others.

        Every rank must call this: a ZeRO-3 parameter is gathered from all ranks, one
        at a time so no rank ever holds more than one extra full parameter on the GPU.
        """
        module = model.module if isinstance(model, DeepSpeedEngine) else model
        keep = _is_main_rank()
        gathered: dict[str, torch.Tensor] = {}
        for name, tensor in module.state_dict(keep_vars=True).items():
            if not name.startswith(prefix):
                continue
            with deepspeed.zero.GatheredParameters([tensor], enabled=is_zero3_partitioned(tensor)):
                if keep:
                    gathered[name] = tensor.detach().to("cpu").clone()
        return gathered

    def close(self) -> None:
        # A stage's ZeRO optimizer keeps gradient hooks on the parameters it managed;
        # left in place they would fire again during the next stage's backward pass.
        if self.engine is not None:
            self.engine.destroy()
            self.engine = None

    def optimizer_state(self) -> dict[str, Any]:
        """This rank's optimizer partition and the schedule; resume with the same world size.

        ZeRO's state holds DeepSpeed objects (the loss scaler): load it with
        ``torch.load(..., weights_only=False)``.
        """
        engine = self._engine()
        assert self.scheduler is not None
        return {
            "optimizer": engine.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "world_size": engine.world_size,
        }

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        engine = self._engine()
        assert self.scheduler is not None
        if state["world_size"] != engine.world_size:
            raise ModelError(
                f"the optimizer state was saved by {state['world_size']} processes but this run has "
                f"{engine.world_size}; ZeRO partitions cannot be re-split",
                hint="resume with the same number of processes, or restart the stage from its weights",
            )
        if isinstance(engine.optimizer, ZeROOptimizer):
            if engine.zero_elastic_checkpoint():
                raise ModelError(
                    f"{self.config_choice}: zero_optimization.elastic_checkpoint needs every rank's "
                    "optimizer state at once, but each rank resumes from its own",
                    hint="remove elastic_checkpoint from the DeepSpeed JSON config",
                )
            # ZeRO takes one entry per rank and reads its own; the fp32 master weights come
            # from the state rather than from the (possibly bf16) model weights.
            per_rank: list[dict[str, Any] | None] = [None] * engine.world_size
            per_rank[dist.get_rank()] = state["optimizer"]
            engine.optimizer.load_state_dict(per_rank, load_from_fp32_weights=True)
        else:
            engine.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def _engine(self) -> DeepSpeedEngine:
        if self.engine is None:
            raise RuntimeError("DeepSpeedBackend.prepare() must run before training")
        return self.engine


def check_config(config: dict[str, Any], choice: str) -> None:
    """Let DeepSpeed parse ``config`` now, so a typo in a user JSON names the file."""
    try:
        DeepSpeedConfig(config)
    except pydantic.ValidationError as exc:
        raise RecipeError(
            f"runtime.deepspeed ({choice}): DeepSpeed rejects the config: {exc}",
            hint="fix or remove the keys named above in the DeepSpeed JSON config",
        ) from exc


def load_into_zero3(
    module: nn.Module, state: dict[str, torch.Tensor], source: str, *, strict: bool = True
) -> None:
    """Load full tensors into ``module``, whose parameters may be ZeRO-3 partitioned.

    Partitioned parameters (a module built under ``deepspeed.zero.Init``, or one a ZeRO-3
    engine already manages) are gathered, written by rank 0 and re-partitioned to every
    rank by DeepSpeed; other tensors are copied on every rank, so every rank passes the
    same ``state`` (read from ``source``, which errors name). Every rank must call this.
    Once an engine exists, follow with ``load_optimizer_state``: the optimizer's fp32
    master weights are restored from there, not from the module. ``strict=False``
    accepts a subset of the module's keys (e.g. only the trainable weights).
    """
    if isinstance(module, DeepSpeedEngine):
        module = module.module
    own = module.state_dict(keep_vars=True)
    missing = sorted(own.keys() - state.keys()) if strict else []
    unexpected = sorted(state.keys() - own.keys())
    if missing or unexpected:
        raise ModelError(
            f"{source}: keys do not match the module (missing: {missing or 'none'}; "
            f"unexpected: {unexpected or 'none'})",
            hint="the checkpoint was saved from a different component or configuration",
        )
    # Module order, the same on every rank: each partitioned gather is a collective.
    targets = {name: tensor for name, tensor in own.items() if name in state}
    for name, target in targets.items():
        expected = tuple(target.ds_shape if is_zero3_partitioned(target) else target.shape)
        if tuple(state[name].shape) != expected:
            raise ModelError(
                f"{source}: {name} has shape {tuple(state[name].shape)} but the module expects {expected}",
                hint="the checkpoint was saved with other model widths "
                "(vision encoder, LLM or connector options)",
            )
    writes = _is_main_rank()
    with torch.no_grad():
        for name, target in targets.items():
            partitioned = is_zero3_partitioned(target)
            with deepspeed.zero.GatheredParameters([target], modifier_rank=0, enabled=partitioned):
                if writes or not partitioned:
                    target.copy_(state[name].to(dtype=target.dtype, device=target.device))


def widest_hidden_size(model: nn.Module) -> int | None:
    """The largest ``config.hidden_size`` among the model's Hugging Face parts, if any."""
    sizes = [
        size
        for part in model.modules()
        if isinstance(size := getattr(getattr(part, "config", None), "hidden_size", None), int)
    ]
    return max(sizes, default=None)


def _is_main_rank() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0
