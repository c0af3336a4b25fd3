"""The one device rule: where a recipe's model runs (training, evaluation, chat, serving)
and in which precision."""

from __future__ import annotations

from typing import Literal

import torch

from llava_kit.errors import RecipeError

DeviceChoice = Literal["auto", "cpu", "cuda"]
PrecisionChoice = Literal["auto", "fp32", "bf16", "fp16"]


def resolve_device(choice: DeviceChoice, local_rank: int = 0) -> torch.device:
    """``runtime.device``: auto is this process's GPU when there is one, else the CPU."""
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RecipeError(
            "runtime.device is cuda but no CUDA device is visible to this process",
            hint="set runtime.device to auto or cpu, or run where a GPU is visible "
            "(check CUDA_VISIBLE_DEVICES)",
        )
    return torch.device("cuda", local_rank)


def resolve_precision(choice: PrecisionChoice, device: torch.device) -> str:
    """``runtime.precision``: auto is bf16 on a GPU that supports it, else fp32."""
    if choice != "auto":
        return choice
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"
