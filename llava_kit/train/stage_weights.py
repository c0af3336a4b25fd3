"""Putting a stage's saved trainable weights back into a model, by exact parameter name."""

from __future__ import annotations

from pathlib import Path

import torch

from llava_kit.errors import ModelError
from llava_kit.model.vlm import LlavaModel
from llava_kit.train.zero3 import is_zero3_partitioned


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
    mismatched = [
        f"{name}: saved {list(tensor.shape)}, model {list(_full_shape(known[name]))}"
        for name, tensor in weights.items() if tuple(tensor.shape) != _full_shape(known[name])
    ]
    if mismatched:
        raise ModelError(
            f"{source}: the checkpoint's tensors do not have this model's shapes: "
            + "; ".join(mismatched[:5]) + (f"; and {len(mismatched) - 5} more" if len(mismatched) > 5 else ""),
            hint="the recipe changed after the run trained (model widths, connector, LLM); "
            "use the recipe.resolved.yaml the run wrote, unedited",
        )
    if is_zero3_partitioned(model):
        from llava_kit.train.deepspeed_backend import load_into_zero3

        load_into_zero3(model, weights, str(source), strict=False)
        return
    model.load_state_dict(weights, strict=False)


def _full_shape(parameter: torch.Tensor) -> tuple[int, ...]:
    """A ZeRO-3 parameter's local data is a slice; its full shape is ``ds_shape``."""
    return tuple(getattr(parameter, "ds_shape", parameter.shape))
