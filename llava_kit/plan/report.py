"""The plan of a recipe: per stage, parameters, sequence budget, steps, FLOPs and memory.

``build_plan`` returns plain data (what ``--json`` prints); ``render_plan`` turns it into
the text report.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from llava_kit.errors import RecipeError
from llava_kit.model.vlm import LlavaModel
from llava_kit.plan.datasets import data_size
from llava_kit.plan.estimate import (
    PRESETS,
    PartCost,
    ZeroSetup,
    flops_per_sample,
    memory_per_gpu,
    optimizer_steps,
)
from llava_kit.plan.meta_model import build_meta_model
from llava_kit.recipes.deepspeed_presets import DEEPSPEED_PRESETS
from llava_kit.recipes.schema import Recipe, StageSpec
from llava_kit.train.freeze import apply_trainable
from llava_kit.train.lora import apply_lora

GIB = 1024**3
FLOPS_FORMULA = (
    "per token: 6 x trainable params + 4 x frozen params the backward pass crosses "
    "+ 2 x frozen params below every trainable part; x tokens each part sees "
    "(encoder: patches per image, connector: visual tokens, LLM: visual + text tokens); "
    "LLM input embeddings (a lookup), attention scores and checkpoint recomputation left out"
)
MEMORY_FORMULA = (
    "bf16/fp16: weights 2 B/param (/GPUs under ZeRO-3), gradients 2 B/trainable param "
    "(/GPUs under ZeRO-2+), AdamW 12 B/trainable param (fp32 master + 2 moments, /GPUs under "
    "ZeRO-1+); fp32: 4/4/8; offload moves optimizer states (zero3_offload: also weights) to CPU; "
    "activations not counted"
)


def build_plan(recipe: Recipe, *, gpus: int = 8, text_tokens: int | None = None) -> dict[str, Any]:
    """Everything ``llava-kit plan`` reports, as JSON-ready data."""
    zero = _zero_setup(recipe.runtime.deepspeed)
    # "auto" trains in bf16 on a GPU and fp32 on a CPU.
    runtime = recipe.runtime
    cpu_auto = runtime.precision == "auto" and runtime.device == "cpu"
    precision = "fp32" if runtime.precision == "fp32" or cpu_auto else "mixed"
    first = build_meta_model(recipe.model)
    parts = {part: _count(getattr(first.model, part)) for part in ("encoder", "connector", "llm")}
    stages = {
        # apply_trainable resets every flag, so stages share one model; LoRA adds modules,
        # so a LoRA stage gets its own.
        name: _stage_plan(
            recipe, first.model if stage.lora is None else build_meta_model(recipe.model).model,
            name, stage, zero, precision, gpus, text_tokens,
        )
        for name, stage in recipe.enabled_stages.items()
    }
    return {
        "recipe": recipe.name,
        "gpus": gpus,
        "deepspeed": recipe.runtime.deepspeed,
        "precision": "bf16/fp16 mixed" if precision == "mixed" else "fp32",
        "model": {
            "encoder_source": first.encoder_source,
            "llm_source": first.llm_source,
            "params": {**parts, "total": sum(parts.values())},
            "encoder_patches_per_image": first.model.encoder.num_patches,
            "visual_tokens_per_image": first.model.num_visual_tokens,
        },
        "stages": stages,
        "formulas": {"flops": FLOPS_FORMULA, "memory": MEMORY_FORMULA},
    }


def _stage_plan(
    recipe: Recipe, model: LlavaModel, name: str, stage: StageSpec, zero: ZeroSetup,
    precision: str, gpus: int, text_tokens: int | None,
) -> dict[str, Any]:
    if stage.lora is not None:
        with warnings.catch_warnings():
            # peft calls a transformers API deprecated in v5; nothing the user can act on.
            warnings.simplefilter("ignore", FutureWarning)
            apply_lora(model, stage.lora)
    apply_trainable(
        model, stage.trainable, field=f"stages.{name}.trainable", lora=stage.lora is not None
    )
    params = {part: _count(getattr(model, part)) for part in ("encoder", "connector", "llm")}
    trainable = {
        part: _count(getattr(model, part), trainable_only=True)
        for part in ("encoder", "connector", "llm")
    }
    total, total_trainable = sum(params.values()), sum(trainable.values())

    size = data_size(stage.data)
    text = text_tokens if text_tokens is not None else size.text_tokens
    images = size.images_per_sample
    visual = model.num_visual_tokens
    max_length = recipe.model.max_length
    llm_tokens = min(max_length, text + images * visual)
    # The LLM's input embedding is a lookup, not a multiply: left out of the FLOPs.
    embedding = model.llm.get_input_embeddings().weight
    embedding_trained = embedding.numel() if embedding.requires_grad else 0
    patches = images * model.encoder.num_patches
    costs = {
        "encoder": PartCost(params["encoder"], trainable["encoder"], patches),
        "connector": PartCost(params["connector"], trainable["connector"], patches),
        "llm": PartCost(
            params["llm"] - embedding.numel(), trainable["llm"] - embedding_trained, llm_tokens
        ),
    }
    per_sample = flops_per_sample(costs)
    steps = None
    if size.samples is not None:
        global_batch = stage.batch.global_size
        steps = optimizer_steps(size.samples, global_batch, stage.epochs, stage.max_steps)
    samples_seen = steps * stage.batch.global_size if steps is not None else None
    alternatives = _memory_setups(zero)
    per_gpu_batch = stage.batch.micro_size * gpus
    return {
        "trainable": stage.trainable,
        "lora": None if stage.lora is None else {"r": stage.lora.r, "alpha": stage.lora.alpha},
        "params": {**params, "total": total},
        "trainable_params": {**trainable, "total": total_trainable},
        "sequence": {
            "max_length": max_length,
            "visual_tokens": visual,
            "text_budget": max_length - visual,
        },
        "data": {
            "format": stage.data.name,
            "samples": size.samples,
            "source": size.source,
            "text_tokens_per_sample": text,
            "images_per_sample": images,
        },
        "batch": {
            "global": stage.batch.global_size,
            "micro": stage.batch.micro_size,
            "gpus": gpus,
            "accumulation": (
                stage.batch.global_size // per_gpu_batch
                if stage.batch.global_size % per_gpu_batch == 0 else None
            ),
        },
        "epochs": stage.epochs,
        "steps": steps,
        "flops": {
            "llm_tokens_per_sample": llm_tokens,
            "per_sample": per_sample,
            "total": per_sample * samples_seen if samples_seen is not None else None,
        },
        "memory_per_gpu": [
            {
                "setup": label,
                "recipe": setup == zero,
                **memory_per_gpu(total, total_trainable, setup, gpus, precision).as_dict(),
            }
            for label, setup in alternatives.items()
        ],
    }


def _count(module: Any, *, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _zero_setup(deepspeed: str) -> ZeroSetup:
    if deepspeed in PRESETS:
        return PRESETS[deepspeed]
    path = Path(deepspeed)
    if not path.is_file():
        raise RecipeError(
            f"runtime.deepspeed: DeepSpeed config not found: {path}",
            hint=f"give a preset ({', '.join(DEEPSPEED_PRESETS)}) or an existing JSON file",
        )
    try:
        zero = json.loads(path.read_text(encoding="utf-8")).get("zero_optimization", {})
    except json.JSONDecodeError as exc:
        raise RecipeError(f"runtime.deepspeed: {path} is not valid JSON: {exc.msg}") from exc
    return ZeroSetup.from_zero_optimization(zero)


def _memory_setups(zero: ZeroSetup) -> dict[str, ZeroSetup]:
    """The recipe's setting and the same ZeRO stage with offload toggled."""
    label = f"zero{zero.stage}" if zero.stage else "no ZeRO"
    base = ZeroSetup(zero.stage)
    offload = ZeroSetup(max(zero.stage, 1), offload_optimizer=True, offload_params=zero.stage >= 3)
    offload_label = (
        f"zero{offload.stage} + optimizer offload"
        + (" + parameter offload" if offload.offload_params else "")
    )
    return {label: base, offload_label: offload}


def render_plan(plan: dict[str, Any]) -> str:
    """The plan as text, one block per stage."""
    model = plan["model"]
    params = model["params"]
    lines = [
        f"plan of {plan['recipe']} on {plan['gpus']} GPUs, deepspeed {plan['deepspeed']}, "
        f"{plan['precision']}",
        f"  encoder   {_n(params['encoder'])}  ({model['encoder_source']})",
        f"  connector {_n(params['connector'])}",
        f"  llm       {_n(params['llm'])}  ({model['llm_source']})",
        f"  total     {_n(params['total'])}",
        f"  visual tokens per image: {model['visual_tokens_per_image']}",
    ]
    for name, stage in plan["stages"].items():
        trained = stage["trainable_params"]
        lora = f" (LoRA r={stage['lora']['r']})" if stage["lora"] else ""
        seq, data, batch, flops = stage["sequence"], stage["data"], stage["batch"], stage["flops"]
        samples = "unknown" if data["samples"] is None else f"{data['samples']:,}"
        accumulation = batch["accumulation"] if batch["accumulation"] is not None else (
            "n/a: global batch is not a multiple of micro x GPUs"
        )
        lines += [
            "",
            f"stage {name}: trains {', '.join(stage['trainable'])}{lora}",
            f"  params        total {_n(stage['params']['total'])}, trainable "
            f"{_n(trained['total'])} (encoder {_n(trained['encoder'])}, connector "
            f"{_n(trained['connector'])}, llm {_n(trained['llm'])})",
            f"  sequence      max_length {seq['max_length']} = {seq['visual_tokens']} visual + "
            f"{seq['text_budget']} text budget",
            f"  data          {samples} samples ({data['source']})",
            f"  batch         global {batch['global']} = micro {batch['micro']} x {batch['gpus']} "
            f"GPUs x accumulation {accumulation}",
            f"  steps         {_or_unknown(stage['steps'])} for {stage['epochs']:g} epoch(s)",
            f"  FLOPs         {flops['per_sample']:.3e} per sample "
            f"({flops['llm_tokens_per_sample']:g} LLM tokens: {data['text_tokens_per_sample']} text (estimate) + "
            f"{data['images_per_sample']:g} image(s)); total {_e(flops['total'])}",
        ]
        for memory in stage["memory_per_gpu"]:
            mark = " (recipe)" if memory["recipe"] else ""
            cpu = f", CPU {_bytes(memory['cpu'])}" if memory["cpu"] else ""
            lines.append(
                f"  memory/GPU    {memory['setup']}{mark}: {_bytes(memory['gpu_total'])} = "
                f"weights {_bytes(memory['weights'])} + grads {_bytes(memory['gradients'])} + "
                f"AdamW {_bytes(memory['optimizer'])}{cpu} (activations not counted)"
            )
    lines += ["", f"FLOPs: {plan['formulas']['flops']}", f"memory: {plan['formulas']['memory']}"]
    return "\n".join(lines)


def _bytes(size: float) -> str:
    return f"{size / GIB:.1f} GiB" if size >= GIB / 10 or size == 0 else f"{size / 2**20:.1f} MiB"


def _n(count: int) -> str:
    return f"{count:,} ({count / 1e9:.2f}B)" if count >= 1e8 else f"{count:,}"


def _e(value: float | None) -> str:
    return "unknown (dataset size unknown)" if value is None else f"{value:.3e}"


def _or_unknown(value: int | None) -> str:
    return "unknown (dataset size unknown)" if value is None else f"{value:,}"
