"""One optimizer step's forward and backward passes over this rank's micro batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
import torch.distributed as torch_dist

from llava_kit.train.backend import Backend
from llava_kit.train.context import RunContext


class StepResult(NamedTuple):
    loss: float  # mean over every micro batch of every rank
    tokens: int  # attended tokens, all ranks
    samples: int  # all ranks
    positions: int  # token positions with padding, all ranks


def optimizer_step(
    engine: torch.nn.Module, backend: Backend, micro_batches: Iterator[dict[str, Any]],
    accumulation: int, ctx: RunContext,
) -> StepResult:
    """Forward/backward over ``accumulation`` micro batches; the optimizer update itself
    is ``backend.step()``, left to the caller so it can skip a non-finite step."""
    device = ctx.device
    loss_sum = torch.zeros((), device=device)
    tokens = samples = positions = 0
    scale = 1.0 if backend.scales_loss_for_accumulation() else 1.0 / accumulation
    for _ in range(accumulation):
        batch = next(micro_batches)
        batch.pop("ids")
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        with ctx.autocast():
            loss = engine(**batch).loss
        backend.backward(loss * scale)
        loss_sum += loss.detach().float()
        tokens += int(batch["attention_mask"].sum())
        positions += batch["attention_mask"].numel()
        samples += int(batch["input_ids"].shape[0])
    stats = torch.stack([loss_sum, *(torch.tensor(float(count), device=device)
                                      for count in (tokens, samples, positions))])
    if ctx.dist.world_size > 1:
        torch_dist.all_reduce(stats)
    micro_count = accumulation * ctx.dist.world_size
    return StepResult(float(stats[0]) / micro_count, int(stats[1]), int(stats[2]), int(stats[3]))
