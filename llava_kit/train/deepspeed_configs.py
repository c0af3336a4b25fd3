"""DeepSpeed JSON configs for ``runtime.deepspeed``: the three built-ins, or the user's file.

Built-ins follow the LLaVA training scripts (ZeRO-2 for most runs, ZeRO-3 for the v1.5
instruction stage, ZeRO-3 with CPU offload when GPU memory runs out). Every value the
recipe already decides (batch sizes, clipping, precision) is written as "auto" and
filled from the ``OptimizerSetup``, so the recipe stays the one source of truth; a user
file that states one of them explicitly must agree with the recipe.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llava_kit.errors import RecipeError
from llava_kit.recipes.deepspeed_presets import NO_DEEPSPEED, ZERO2, ZERO3, ZERO3_OFFLOAD
from llava_kit.train.backend import OptimizerSetup

AUTO = "auto"

# DeepSpeed's own defaults, used for bucket sizes when the model's width is unknown.
_DEFAULT_BUCKET = 500_000_000
_DEFAULT_PREFETCH_BUCKET = 50_000_000
_DEFAULT_PERSISTENCE_THRESHOLD = 100_000

_FP16_LOSS_SCALING = {
    "enabled": AUTO,
    "loss_scale": 0,  # 0 = dynamic loss scaling
    "loss_scale_window": 1000,
    "initial_scale_power": 16,
    "hysteresis": 2,
    "min_loss_scale": 1,
}

_ZERO2 = {
    "stage": 2,
    "overlap_comm": True,
    "contiguous_gradients": True,
    "sub_group_size": 1_000_000_000,
    "reduce_bucket_size": AUTO,
    "allgather_bucket_size": AUTO,
}

_ZERO3 = {
    "stage": 3,
    "overlap_comm": True,
    "contiguous_gradients": True,
    "sub_group_size": 1_000_000_000,
    "reduce_bucket_size": AUTO,
    "stage3_prefetch_bucket_size": AUTO,
    "stage3_param_persistence_threshold": AUTO,
    "stage3_max_live_parameters": 1_000_000_000,
    "stage3_max_reuse_distance": 1_000_000_000,
    # Without this, saving under ZeRO-3 writes empty placeholder tensors.
    "stage3_gather_16bit_weights_on_model_save": True,
}

_CPU_OFFLOAD = {"device": "cpu", "pin_memory": True}

BUILTIN_ZERO = {
    ZERO2: _ZERO2,
    ZERO3: _ZERO3,
    ZERO3_OFFLOAD: {**_ZERO3, "offload_optimizer": _CPU_OFFLOAD, "offload_param": _CPU_OFFLOAD},
}

# Which recipe field each filled DeepSpeed key comes from (named in conflict errors).
_RECIPE_FIELD = {
    "train_batch_size": "the stage's batch.global_size",
    "train_micro_batch_size_per_gpu": "the stage's batch.micro_size",
    "gradient_accumulation_steps": "the stage's batch.global_size / (batch.micro_size x processes)",
    "gradient_clipping": "the stage's optimizer max_grad_norm",
    "bf16.enabled": "runtime.precision",
    "fp16.enabled": "runtime.precision",
}


def deepspeed_config(
    choice: str, setup: OptimizerSetup, world_size: int, *, hidden_size: int | None = None
) -> dict[str, Any]:
    """The full DeepSpeed config for ``runtime.deepspeed`` = ``choice``, no "auto" left.

    ``hidden_size`` (the widest model dimension, when known) sizes the communication
    buckets the way the reference's "auto" does; otherwise DeepSpeed's defaults apply.
    A relative JSON path is taken relative to the working directory.
    """
    if choice in BUILTIN_ZERO:
        template = _builtin_template(choice)
        source = f"built-in DeepSpeed config {choice!r}"
    else:
        template, source = _load_user_json(choice)
    return _fill(template, setup, world_size, hidden_size, source)


def uses_cpu_offload(config: dict[str, Any]) -> bool:
    """Whether ZeRO keeps optimizer state or parameters off the GPU (CPU or NVMe)."""
    zero = config.get("zero_optimization", {})
    offloads = (zero.get(key) or {} for key in ("offload_optimizer", "offload_param"))
    return any(offload.get("device", "none") != "none" for offload in offloads)


def _builtin_template(choice: str) -> dict[str, Any]:
    return {
        "fp16": dict(_FP16_LOSS_SCALING),
        "bf16": {"enabled": AUTO},
        "train_batch_size": AUTO,
        "train_micro_batch_size_per_gpu": AUTO,
        "gradient_accumulation_steps": AUTO,
        "gradient_clipping": AUTO,
        "zero_optimization": copy.deepcopy(BUILTIN_ZERO[choice]),
        "steps_per_print": 10**10,  # progress goes to llava-kit's own metrics, not DeepSpeed's log
        "wall_clock_breakdown": False,
    }


def _load_user_json(choice: str) -> tuple[dict[str, Any], str]:
    path = Path(choice)
    if choice == NO_DEEPSPEED or not path.is_file():
        raise RecipeError(
            f"runtime.deepspeed: {choice!r} is neither a built-in DeepSpeed config nor an existing JSON file",
            hint=f"use one of {', '.join(BUILTIN_ZERO)} (or 'none' for one process without DeepSpeed), "
            "or give the path of a DeepSpeed JSON config",
        )
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RecipeError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            hint="fix the DeepSpeed config named by runtime.deepspeed",
        ) from exc
    if not isinstance(config, dict):
        raise RecipeError(f"{path}: a DeepSpeed config must be a JSON object, got {type(config).__name__}")
    for section in ("optimizer", "scheduler"):
        if section in config:
            raise RecipeError(
                f"{path}: the {section!r} section cannot be used: llava-kit builds the optimizer and the "
                "learning-rate schedule from the recipe",
                hint=f"delete {section!r} from the JSON and set the stage's optimizer options in the recipe",
            )
    return config, str(path)


def _fill(
    config: dict[str, Any], setup: OptimizerSetup, world_size: int, hidden_size: int | None, source: str
) -> dict[str, Any]:
    recipe_values: dict[str, Any] = {
        "train_batch_size": setup.micro_batch_size * setup.grad_accumulation * world_size,
        "train_micro_batch_size_per_gpu": setup.micro_batch_size,
        "gradient_accumulation_steps": setup.grad_accumulation,
        "gradient_clipping": float(setup.max_grad_norm or 0.0),  # 0 disables clipping in DeepSpeed
        "bf16.enabled": setup.precision == "bf16",
        "fp16.enabled": setup.precision == "fp16",
    }
    bucket_values = _bucket_sizes(hidden_size)
    filled = copy.deepcopy(config)
    for key, wanted in recipe_values.items():
        _set_or_check(filled, key, wanted, source)
    zero = filled.get("zero_optimization", {})
    for key, value in bucket_values.items():
        if zero.get(key) == AUTO:
            zero[key] = value
    # We always hand DeepSpeed our own torch AdamW, which ZeRO otherwise refuses.
    filled["zero_allow_untested_optimizer"] = True
    if uses_cpu_offload(filled):
        # ...and with offload DeepSpeed would insist on its compiled CPU Adam instead.
        filled.setdefault("zero_force_ds_cpu_optimizer", False)
    leftover = [path for path, value in _leaves(filled) if value == AUTO]
    if leftover:
        raise RecipeError(
            f"{source}: {', '.join(leftover)} is 'auto' but llava-kit has no value for it",
            hint="write an explicit value in the DeepSpeed JSON config",
        )
    return filled


def _set_or_check(config: dict[str, Any], dotted_key: str, wanted: Any, source: str) -> None:
    """Fill an "auto" (or missing) value; an explicit value must match the recipe's."""
    *parents, leaf = dotted_key.split(".")
    node = config
    for parent in parents:
        node = node.setdefault(parent, {})
    current = node.get(leaf, AUTO)
    if current == AUTO:
        node[leaf] = wanted
    elif current != wanted:
        raise RecipeError(
            f"{source}: {dotted_key} is {current!r} but the recipe gives {wanted!r} "
            f"(from {_RECIPE_FIELD[dotted_key]})",
            hint=f'set {dotted_key} to "auto" in the JSON so the recipe decides, or change the recipe',
        )


def _bucket_sizes(hidden_size: int | None) -> dict[str, int]:
    if hidden_size is None:
        return {
            "reduce_bucket_size": _DEFAULT_BUCKET,
            "allgather_bucket_size": _DEFAULT_BUCKET,
            "stage3_prefetch_bucket_size": _DEFAULT_PREFETCH_BUCKET,
            "stage3_param_persistence_threshold": _DEFAULT_PERSISTENCE_THRESHOLD,
        }
    # One hidden x hidden matrix per bucket: large enough to batch communication, small
    # enough not to hold a large share of the model in flight.
    square = hidden_size * hidden_size
    return {
        "reduce_bucket_size": square,
        "allgather_bucket_size": square,
        "stage3_prefetch_bucket_size": int(0.9 * square),
        "stage3_param_persistence_threshold": 10 * hidden_size,
    }


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix, node
