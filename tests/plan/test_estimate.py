"""The plan's formulas on hand-computed cases."""

from __future__ import annotations

import pytest

from llava_kit.plan import (
    PRESETS,
    PartCost,
    ZeroSetup,
    flops_per_sample,
    memory_per_gpu,
    optimizer_steps,
)
from llava_kit.recipes.deepspeed_presets import DEEPSPEED_PRESETS, NO_DEEPSPEED, ZERO_PRESETS
from llava_kit.train.deepspeed_configs import BUILTIN_ZERO


def test_flops_stage1_frozen_llm_above_trainable_connector_costs_4x() -> None:
    parts = {
        "encoder": PartCost(params=10, trainable=0, tokens=4),  # nothing trainable below: 2x
        "connector": PartCost(params=3, trainable=3, tokens=4),  # trainable: 6x
        "llm": PartCost(params=100, trainable=0, tokens=20),  # backward crosses it: 4x
    }
    assert flops_per_sample(parts) == 2 * 10 * 4 + 6 * 3 * 4 + 4 * 100 * 20 == 8152


def test_flops_stage2_trainable_llm_costs_6x() -> None:
    parts = {
        "encoder": PartCost(10, 0, 4),
        "connector": PartCost(3, 3, 4),
        "llm": PartCost(100, 100, 20),
    }
    assert flops_per_sample(parts) == 80 + 72 + 6 * 100 * 20 == 12152


def test_flops_partly_trainable_part_pays_weight_gradients_only_for_its_trainable_share() -> None:
    # LoRA-like: the LLM's 100 parameters include 10 trainable ones; nothing below trains.
    parts = {
        "encoder": PartCost(10, 0, 4), "connector": PartCost(3, 0, 4), "llm": PartCost(100, 10, 20),
    }
    assert flops_per_sample(parts) == 2 * 10 * 4 + 2 * 3 * 4 + (2 * 100 + 2 * 100 + 2 * 10) * 20


def test_flops_nothing_trainable_is_forward_only() -> None:
    assert flops_per_sample({"llm": PartCost(100, 0, 20)}) == 2 * 100 * 20


@pytest.mark.parametrize(
    ("zero", "expected"),
    [
        # (weights, gradients, optimizer, cpu) in bytes for 1000 params, 100 trainable, 4 GPUs
        (ZeroSetup(0), (2000, 200, 1200, 0)),
        (ZeroSetup(1), (2000, 200, 300, 0)),
        (ZeroSetup(2), (2000, 50, 300, 0)),
        (ZeroSetup(3), (500, 50, 300, 0)),
        (ZeroSetup(2, offload_optimizer=True), (2000, 50, 0, 300)),
        (ZeroSetup(3, offload_optimizer=True, offload_params=True), (0, 50, 0, 800)),
    ],
)
def test_memory_per_zero_stage(zero: ZeroSetup, expected: tuple[float, ...]) -> None:
    memory = memory_per_gpu(1000, 100, zero, gpus=4)
    assert (memory.weights, memory.gradients, memory.optimizer, memory.cpu) == expected
    assert memory.gpu_total == sum(expected[:3])


def test_memory_fp32_uses_4_4_8_bytes() -> None:
    memory = memory_per_gpu(1000, 100, ZeroSetup(0), gpus=1, precision="fp32")
    assert (memory.weights, memory.gradients, memory.optimizer) == (4000, 400, 800)


def test_presets_match_the_recipe_choices() -> None:
    assert tuple(PRESETS) == DEEPSPEED_PRESETS
    assert PRESETS["none"] == ZeroSetup(0)
    assert PRESETS["zero2"] == ZeroSetup(2)
    assert PRESETS["zero3"] == ZeroSetup(3)
    assert PRESETS["zero3_offload"] == ZeroSetup(3, offload_optimizer=True, offload_params=True)


def test_every_deepspeed_preset_has_a_builtin_config_the_plan_reads_the_same() -> None:
    assert tuple(BUILTIN_ZERO) == ZERO_PRESETS
    assert DEEPSPEED_PRESETS == (NO_DEEPSPEED, *ZERO_PRESETS)
    for name in ZERO_PRESETS:
        assert PRESETS[name] == ZeroSetup.from_zero_optimization(BUILTIN_ZERO[name]), name


def test_a_zero_optimization_section_gives_its_stage_and_offloads() -> None:
    assert ZeroSetup.from_zero_optimization({}) == ZeroSetup(0)
    section = {"stage": 3, "offload_optimizer": {"device": "nvme"}, "offload_param": {"device": "none"}}
    assert ZeroSetup.from_zero_optimization(section) == ZeroSetup(3, offload_optimizer=True)


def test_paper_13b_finetune_memory_under_zero2() -> None:
    # 13.02B trainable of 13.32B on 8 GPUs: 2 B weights, 2/8 B grads, 12/8 B AdamW per param.
    total, trainable = 13_324_292_096, 13_021_112_320
    memory = memory_per_gpu(total, trainable, PRESETS["zero2"], gpus=8)
    assert memory.weights == 2 * total
    assert memory.gradients == 2 * trainable / 8
    assert memory.optimizer == 12 * trainable / 8


@pytest.mark.parametrize(
    ("samples", "batch", "epochs", "max_steps", "steps"),
    [
        (595_375, 128, 1, None, 4651),  # CC-595K: the last partial batch is dropped
        (12_726, 32, 12, None, 4764),  # ScienceQA train, 12 epochs: 397 x 12
        (12_726, 32, 0.5, None, 199),  # fractional epochs round up, as the runner does
        (12_726, 32, 12, 100, 100),
    ],
)
def test_optimizer_steps(
    samples: int, batch: int, epochs: float, max_steps: int | None, steps: int
) -> None:
    assert optimizer_steps(samples, batch, epochs, max_steps) == steps
