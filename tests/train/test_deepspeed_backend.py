"""DeepSpeedBackend against PlainBackend: same losses, norms, schedule, weights, resume.

The same tiny training loop (written to tmp_path as a script) runs three ways:
PlainBackend in this process with 4-step accumulation; DeepSpeed under
``torch.distributed.run`` with 2 processes x 2 accumulation steps (micro batches dealt
round-robin, so both average the same 4 micro losses per step); DeepSpeed in one
process without a launcher. ZeRO keeps fp32 master weights, so results agree to float
rounding.
"""

from __future__ import annotations

import json
import math
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from llava_kit.errors import ModelError, RecipeError
from llava_kit.train.backend import PlainBackend
from llava_kit.train.deepspeed_backend import check_config, load_into_zero3, widest_hidden_size
from llava_kit.train.zero3 import is_zero3_partitioned

LOOP_SCRIPT = '''
"""A tiny MLP trained for a few steps through the Backend API."""

import json
import sys

import torch
import torch.distributed as dist
from torch import nn

from llava_kit.train.backend import OptimizerSetup

STEPS = 5
RESUME_AT = 3
MICRO = 2
MICROS_PER_STEP = 4  # micro batches per global batch, dealt round-robin over the ranks


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3))


def make_batches():
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(STEPS, MICROS_PER_STEP, MICRO, 6, generator=generator)
    targets = torch.randn(STEPS, MICROS_PER_STEP, MICRO, 3, generator=generator)
    return inputs, targets


def make_setup(model, world):
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    weights = [p for name, p in trainable if name.endswith("weight")]
    biases = [p for name, p in trainable if name.endswith("bias")]
    return OptimizerSetup(
        param_groups=[
            {"params": weights, "lr": 0.05, "weight_decay": 0.1},
            {"params": biases, "lr": 0.02, "weight_decay": 0.0},
        ],
        betas=(0.9, 0.95),
        eps=1e-8,
        max_grad_norm=0.3,  # below every step's norm: clipping is always active
        total_steps=STEPS,
        lr_lambda=lambda step: min(1.0, (step + 1) / 3),
        micro_batch_size=MICRO,
        grad_accumulation=MICROS_PER_STEP // world,
        precision="fp32",
    )


def train(backend, model, steps, rank, world, resume_from=None):
    inputs, targets = make_batches()
    setup = make_setup(model, world)
    forward = backend.prepare(model, setup)
    if resume_from is not None:  # in the stage runner's order: weights, then optimizer
        from llava_kit.train.deepspeed_backend import load_into_zero3

        load_into_zero3(model, resume_from["weights"], source="step-3 checkpoint")
        backend.load_optimizer_state(resume_from["optimizer"])
    records = []
    for step in steps:
        local = 0.0
        for micro in range(rank, MICROS_PER_STEP, world):
            loss = nn.functional.mse_loss(forward(inputs[step, micro]), targets[step, micro])
            scale = 1.0 if backend.scales_loss_for_accumulation() else 1.0 / setup.grad_accumulation
            backend.backward(loss * scale)
            local += loss.item()
        grad_norm = backend.step()
        total = torch.tensor(local, dtype=torch.float64)
        if world > 1:
            dist.all_reduce(total)
        records.append({"loss": total.item() / MICROS_PER_STEP, "grad_norm": grad_norm, "lr": backend.current_lr()})
    return records


def as_lists(state):
    return {name: tensor.tolist() for name, tensor in state.items()}


def two_stages(make_backend, rank, world):
    """Like a recipe's stages: one model, a new backend per stage, more parameters trained later."""
    model = make_model()
    for parameter in [*model[0].parameters(), *model[2].parameters()]:
        parameter.requires_grad_(False)
    first = train(make_backend(), model, range(RESUME_AT), rank, world)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return first + train(make_backend(), model, range(RESUME_AT, STEPS), rank, world)


def run_deepspeed(choices, out_path):
    from llava_kit.train.deepspeed_backend import DeepSpeedBackend, load_into_zero3
    from llava_kit.train.zero3 import is_zero3_partitioned
    from llava_kit.train.distributed import broadcast_object, init_distributed, shutdown_distributed

    import deepspeed

    context = init_distributed()
    rank, world = context.rank, context.world_size
    results = {}
    for choice in choices:
        backend = DeepSpeedBackend(choice)
        model = make_model()
        result = {"records": train(backend, model, range(STEPS), rank, world), "world": world}
        weights = backend.trainable_state_dict(model)
        result["weights"] = as_lists(weights)
        result["last_layer"] = as_lists(backend.trainable_state_dict(backend.engine, prefix="4."))

        first = DeepSpeedBackend(choice)
        first_model = make_model()
        train(first, first_model, range(RESUME_AT), rank, world)
        checkpoint = {
            "weights": broadcast_object(first.trainable_state_dict(first_model)),
            "optimizer": first.optimizer_state(),
        }
        result["resumed"] = train(
            DeepSpeedBackend(choice), make_model(), range(RESUME_AT, STEPS), rank, world, resume_from=checkpoint
        )
        result["two_stages"] = two_stages(lambda: DeepSpeedBackend(choice), rank, world)

        if choice.startswith("zero3"):
            with deepspeed.zero.Init(config_dict_or_path=backend.config):
                partitioned = make_model()
            result["was_partitioned"] = is_zero3_partitioned(partitioned[0].weight)
            result["local_numel"] = partitioned[0].weight.numel()
            load_into_zero3(partitioned, broadcast_object(weights), source="weights.safetensors")
            result["reloaded"] = as_lists(backend.trainable_state_dict(partitioned))
        if world == 1:
            early = DeepSpeedBackend(choice)
            early_model = make_model()
            forward = early.prepare(early_model, make_setup(early_model, world))
            inputs, targets = make_batches()
            early.backward(nn.functional.mse_loss(forward(inputs[0, 0]), targets[0, 0]))
            try:
                early.step()
            except RuntimeError as exc:
                result["early_step_error"] = str(exc)
        results[choice] = result
    results["from_last_rank"] = broadcast_object(f"rank {rank} of {world}", src=world - 1)
    shutdown_distributed()
    results["group_destroyed"] = not dist.is_initialized()
    if context.is_main:
        with open(out_path, "w") as handle:
            json.dump(results, handle)


if __name__ == "__main__":
    run_deepspeed(sys.argv[2:], sys.argv[1])
'''

RELATIVE_TOLERANCE = 1e-5
DISTRIBUTED_CHOICES = ("zero2", "zero3", "zero3_offload")


def _launch(command: list[str], out: Path) -> dict[str, Any] | str:
    """The results a launched loop wrote, or why there are none (its exit and output)."""
    # CPU + gloo even on a GPU machine: the loop keeps its tensors on the CPU.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    done = subprocess.run(command, cwd=out.parent, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 or "terminate called" in done.stderr:
        return f"{command} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return json.loads(out.read_text())


class Launches:
    """One launch per configuration, run when a test first needs it and shared after.

    A launch that fails fails exactly the tests that read it, each with the launch's own
    exit code and output, instead of erroring every test of the module through a fixture.
    """

    def __init__(self, script: Path, nproc: int) -> None:
        self.script, self.nproc = script, nproc
        self.outcomes: dict[str, dict[str, Any] | str] = {}

    def __call__(self, choice: str) -> dict[str, Any]:
        if choice not in self.outcomes:
            out = self.script.parent / f"{choice}_{self.nproc}proc.json"
            launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
                         str(self.nproc), "--standalone"] if self.nproc > 1 else [sys.executable])
            self.outcomes[choice] = _launch([*launcher, str(self.script), str(out), choice], out)
        outcome = self.outcomes[choice]
        if isinstance(outcome, str):
            pytest.fail(outcome, pytrace=False)
        assert outcome["group_destroyed"], "the loop left its process group for interpreter exit"
        return {**outcome[choice], "from_last_rank": outcome["from_last_rank"]}


@pytest.fixture(scope="module")
def loop_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    script = tmp_path_factory.mktemp("deepspeed_loop") / "loop.py"
    script.write_text(LOOP_SCRIPT)
    return script


@pytest.fixture(scope="module")
def plain(loop_script: Path) -> dict[str, Any]:
    """The reference: one process, PlainBackend, all 4 micro batches accumulated."""
    loop = runpy.run_path(str(loop_script))
    model = loop["make_model"]()
    backend = PlainBackend()
    records = loop["train"](backend, model, range(loop["STEPS"]), 0, 1)
    return {
        "records": records,
        "weights": backend.trainable_state_dict(model),
        "resume_at": loop["RESUME_AT"],
        "two_stages": loop["two_stages"](PlainBackend, 0, 1),
    }


@pytest.fixture(scope="module")
def two_process_run(loop_script: Path) -> Launches:
    return Launches(loop_script, nproc=2)


@pytest.fixture(scope="module")
def one_process_run(loop_script: Path) -> Launches:
    """DeepSpeed in one process without a launcher."""
    return Launches(loop_script, nproc=1)


def _assert_records_match(actual: list[dict[str, float]], expected: list[dict[str, float]]) -> None:
    assert len(actual) == len(expected)
    for step, (got, want) in enumerate(zip(actual, expected)):
        for key in ("loss", "grad_norm", "lr"):
            assert math.isclose(got[key], want[key], rel_tol=RELATIVE_TOLERANCE), (step, key, got, want)


def _assert_weights_match(actual: dict[str, list], expected: dict[str, torch.Tensor]) -> None:
    assert list(actual) == list(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(torch.tensor(actual[name]), tensor, rtol=RELATIVE_TOLERANCE, atol=1e-6)


@pytest.mark.distributed
@pytest.mark.parametrize("choice", DISTRIBUTED_CHOICES)
def test_two_processes_train_like_one_plain_process(
    choice: str, two_process_run: Launches, plain: dict[str, Any]
) -> None:
    run = two_process_run(choice)
    assert run["world"] == 2
    # Clipping is active on every step, so a wrong norm or clip would change the losses.
    assert all(record["grad_norm"] > 0.3 for record in plain["records"])
    _assert_records_match(run["records"], plain["records"])
    _assert_weights_match(run["weights"], plain["weights"])


@pytest.mark.distributed
@pytest.mark.parametrize("choice", DISTRIBUTED_CHOICES)
def test_prefix_selects_parameters_through_the_engine(choice: str, two_process_run: Launches) -> None:
    run = two_process_run(choice)
    assert list(run["last_layer"]) == ["4.weight", "4.bias"]
    assert run["last_layer"]["4.weight"] == run["weights"]["4.weight"]


@pytest.mark.distributed
@pytest.mark.parametrize("choice", DISTRIBUTED_CHOICES)
def test_resuming_from_optimizer_state_continues_the_same_run(
    choice: str, two_process_run: Launches, plain: dict[str, Any]
) -> None:
    _assert_records_match(two_process_run(choice)["resumed"], plain["records"][plain["resume_at"]:])


@pytest.mark.distributed
@pytest.mark.parametrize("choice", DISTRIBUTED_CHOICES)
def test_a_later_stage_on_the_same_model_trains_like_plain(
    choice: str, two_process_run: Launches, plain: dict[str, Any]
) -> None:
    # stage 1 trains the last layer only, stage 2 everything (as connector, then LLM)
    step = plain["resume_at"]
    assert plain["two_stages"][step]["loss"] != plain["records"][step]["loss"]
    _assert_records_match(two_process_run(choice)["two_stages"], plain["two_stages"])


@pytest.mark.distributed
@pytest.mark.parametrize("choice", ["zero3", "zero3_offload"])
def test_load_into_zero3_fills_a_partitioned_module(choice: str, two_process_run: Launches) -> None:
    run = two_process_run(choice)
    assert run["was_partitioned"] and run["local_numel"] == 0  # each rank held no full weight
    assert run["reloaded"] == run["weights"]


@pytest.mark.distributed
def test_broadcast_object_sends_from_the_chosen_rank(two_process_run: Launches) -> None:
    assert two_process_run("zero2")["from_last_rank"] == "rank 1 of 2"


@pytest.mark.distributed
def test_one_process_without_launcher_accumulates_like_plain(
    one_process_run: Launches, plain: dict[str, Any]
) -> None:
    run = one_process_run("zero2")
    assert run["world"] == 1 and run["from_last_rank"] == "rank 0 of 1"
    _assert_records_match(run["records"], plain["records"])
    _assert_weights_match(run["weights"], plain["weights"])
    _assert_records_match(run["resumed"], plain["records"][plain["resume_at"]:])


@pytest.mark.distributed
def test_step_before_the_accumulation_boundary_is_refused(one_process_run: Launches) -> None:
    assert "backward() must run exactly 4 times per step()" in one_process_run("zero2")["early_step_error"]


def test_load_into_zero3_copies_into_an_unpartitioned_module() -> None:
    target = nn.Linear(3, 2)
    source = nn.Linear(3, 2)
    load_into_zero3(target, source.state_dict(), source="connector.safetensors")
    torch.testing.assert_close(target.weight, source.weight, rtol=0, atol=0)
    torch.testing.assert_close(target.bias, source.bias, rtol=0, atol=0)
    assert not is_zero3_partitioned(target.weight)


def test_load_into_zero3_rejects_missing_and_unexpected_keys() -> None:
    state = {"weight": torch.zeros(2, 3), "extra": torch.zeros(1)}
    with pytest.raises(ModelError) as caught:
        load_into_zero3(nn.Linear(3, 2), state, source="runs/a/connector.safetensors")
    assert caught.value.message == (
        "runs/a/connector.safetensors: keys do not match the module "
        "(missing: ['bias']; unexpected: ['extra'])"
    )


def test_load_into_zero3_not_strict_loads_a_subset() -> None:
    target = nn.Linear(3, 2)
    bias_before = target.bias.detach().clone()
    load_into_zero3(target, {"weight": torch.ones(2, 3)}, source="trainable.safetensors", strict=False)
    torch.testing.assert_close(target.weight, torch.ones(2, 3), rtol=0, atol=0)
    torch.testing.assert_close(target.bias, bias_before, rtol=0, atol=0)
    with pytest.raises(ModelError, match=r"missing: none; unexpected: \['scale'\]"):
        load_into_zero3(target, {"scale": torch.ones(1)}, source="trainable.safetensors", strict=False)


def test_load_into_zero3_rejects_other_shapes_before_writing() -> None:
    target = nn.Linear(3, 2)
    before = target.weight.detach().clone()
    state = {"weight": torch.ones(4, 3), "bias": torch.ones(2)}
    with pytest.raises(ModelError, match=r"connector.safetensors: weight has shape \(4, 3\) but the module expects \(2, 3\)"):
        load_into_zero3(target, state, source="connector.safetensors")
    torch.testing.assert_close(target.weight, before, rtol=0, atol=0)


def test_check_config_names_the_user_file_for_unknown_keys(tmp_path: Path) -> None:
    config = {"train_batch_size": 8, "train_micro_batch_size_per_gpu": 8, "gradient_accumulation_steps": 1,
              "zero_optimization": {"stage": 2, "overlap_com": True}}
    with pytest.raises(RecipeError) as caught:
        check_config(config, str(tmp_path / "ds.json"))
    assert f"runtime.deepspeed ({tmp_path / 'ds.json'})" in caught.value.message
    assert "overlap_com" in caught.value.message


def test_widest_hidden_size_reads_hugging_face_configs() -> None:
    class WithConfig(nn.Module):
        def __init__(self, hidden_size: int) -> None:
            super().__init__()
            self.config = type("Config", (), {"hidden_size": hidden_size})()
            self.proj = nn.Linear(2, 2)

    model = nn.ModuleDict({"vision": WithConfig(32), "llm": WithConfig(96), "connector": nn.Linear(2, 2)})
    assert widest_hidden_size(model) == 96
    assert widest_hidden_size(nn.Linear(2, 2)) is None
