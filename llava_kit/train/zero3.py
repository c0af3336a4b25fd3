"""The one rule for telling whether ZeRO-3 has partitioned a tensor or a module's weights."""

from __future__ import annotations

import torch
from torch import nn


def is_zero3_partitioned(target: torch.Tensor | nn.Module) -> bool:
    """ZeRO-3 tags the parameters it manages (their local data is only a slice); a module
    counts when any of its parameters is tagged."""
    if isinstance(target, nn.Module):
        return any(is_zero3_partitioned(parameter) for parameter in target.parameters())
    return hasattr(target, "ds_id")
