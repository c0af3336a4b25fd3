"""Pure formulas behind ``llava-kit plan``: trainable counts, training FLOPs, memory per GPU.

FLOPs ("trainable-aware"): a matrix multiply costs 2 FLOPs per parameter per token in the
forward pass, 2 more for the gradient of its input and 2 more for the gradient of its
weight. So, per token a part sees:

- trainable parameters cost 6 (forward + input gradient + weight gradient);
- frozen parameters the backward pass must go through (a frozen LLM above a trainable
  connector) cost 4: forward + input gradient, no weight gradient;
- frozen parameters with nothing trainable below them (the encoder when only the
  connector trains) cost 2: forward only.

Total = sum over parts of cost x params x tokens that part sees. Attention-score FLOPs
(quadratic in length), embedding lookups and gradient-checkpointing recomputation are left
out, as in the usual 6ND model-FLOPs count.

Memory per GPU (mixed precision, as DeepSpeed trains bf16): weights 2 B per parameter,
gradients 2 B per trainable parameter, AdamW 12 B per trainable parameter (fp32 master copy,
first and second moments); fp32 training uses 4 / 4 / 8. ZeRO-1 splits the optimizer states
over the GPUs, ZeRO-2 also the gradients, ZeRO-3 also the weights; offloading moves the
optimizer states (and, under zero3_offload, the weights) to CPU memory. Activations are not
counted: they depend on micro batch, length and checkpointing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from llava_kit.recipes.deepspeed_presets import NO_DEEPSPEED, ZERO2, ZERO3, ZERO3_OFFLOAD

PARTS = ("encoder", "connector", "llm")  # in the order data flows through them


@dataclass(frozen=True)
class PartCost:
    """One part: all its parameters, the trainable ones, and tokens it sees per sample."""

    params: int
    trainable: int
    tokens: float


def flops_per_sample(parts: dict[str, PartCost]) -> float:
    """Training FLOPs of one sample; ``parts`` in data-flow order (encoder first)."""
    total = 0.0
    trainable_below = False
    for cost in parts.values():
        trainable_below = trainable_below or cost.trainable > 0
        # Everything below or in a part with trainable weights needs the input gradient.
        per_token = 2 * cost.params + (2 * cost.params if trainable_below else 0)
        per_token += 2 * cost.trainable
        total += per_token * cost.tokens
    return total


@dataclass(frozen=True)
class ZeroSetup:
    """What a DeepSpeed setting partitions and offloads."""

    stage: int  # 0 = no ZeRO (every GPU holds everything)
    offload_optimizer: bool = False
    offload_params: bool = False

    @classmethod
    def from_zero_optimization(cls, zero: Mapping[str, Any]) -> ZeroSetup:
        """The setup a DeepSpeed config's ``zero_optimization`` section describes."""

        def offloaded(key: str) -> bool:
            return str((zero.get(key) or {}).get("device", "none")) in ("cpu", "nvme")

        return cls(
            int(zero.get("stage", 0)),
            offload_optimizer=offloaded("offload_optimizer"),
            offload_params=offloaded("offload_param"),
        )


# Written out so these formulas need no trainer code; a test keeps them equal to
# ZeroSetup.from_zero_optimization of each built-in DeepSpeed config.
PRESETS: dict[str, ZeroSetup] = {
    NO_DEEPSPEED: ZeroSetup(0),
    ZERO2: ZeroSetup(2),
    ZERO3: ZeroSetup(3),
    ZERO3_OFFLOAD: ZeroSetup(3, offload_optimizer=True, offload_params=True),
}

# bytes per parameter: (weights, gradients, optimizer states)
BYTES = {"mixed": (2, 2, 12), "fp32": (4, 4, 8)}


@dataclass(frozen=True)
class Memory:
    """Bytes per GPU (and per GPU's share of CPU memory under offload)."""

    weights: float
    gradients: float
    optimizer: float
    cpu: float

    @property
    def gpu_total(self) -> float:
        return self.weights + self.gradients + self.optimizer

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "gpu_total": self.gpu_total}


def memory_per_gpu(
    params: int, trainable: int, zero: ZeroSetup, gpus: int, precision: str = "mixed"
) -> Memory:
    """Weights, gradients and AdamW states one GPU holds under ``zero`` on ``gpus`` GPUs."""
    weight_b, grad_b, optim_b = BYTES[precision]
    weights = params * weight_b / (gpus if zero.stage >= 3 else 1)
    gradients = trainable * grad_b / (gpus if zero.stage >= 2 else 1)
    optimizer = trainable * optim_b / (gpus if zero.stage >= 1 else 1)
    cpu = 0.0
    if zero.offload_optimizer:
        cpu += optimizer
        optimizer = 0.0
    if zero.offload_params:
        cpu += weights
        weights = 0.0
    return Memory(weights=weights, gradients=gradients, optimizer=optimizer, cpu=cpu)


def optimizer_steps(
    num_samples: int, global_batch: int, epochs: float, max_steps: int | None
) -> int:
    """Steps the runner takes: whole global batches per epoch (the last partial one dropped)."""
    total = math.ceil((num_samples // global_batch) * epochs)
    if max_steps is not None:
        total = min(total, max_steps)
    return max(1, total)
