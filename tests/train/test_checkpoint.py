from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy
import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from llava_kit.errors import LlavaKitError, ModelError
from llava_kit.train import checkpoint as checkpoint_module
from llava_kit.train.checkpoint import (
    DamagedCheckpoint,
    capture_rng_state,
    latest_checkpoint,
    load_checkpoint,
    load_connector_strict,
    prune_checkpoints,
    read_connector_meta,
    restore_rng_state,
    save_checkpoint,
    save_connector,
    step_checkpoint_dir,
    verify_checkpoint,
)

RECIPE_FIELDS = {
    "model.connector": "mlp2x_gelu {}",
    "model.encoder": "hf_clip {'path': '/models/clip-tiny'}",
    "model.llm": "hf_causal_lm {'path': '/models/llama-tiny'}",
}


def _draws() -> tuple[list[float], list[float], list[float], list[float]]:
    return (
        [random.random() for _ in range(3)] + [random.gauss(0, 1)],
        numpy.random.standard_normal(3).tolist() + numpy.random.rand(2).tolist(),
        torch.rand(4).tolist(),
        torch.randn(3).tolist(),
    )


def test_rng_round_trip_is_exact_through_json() -> None:
    random.seed(1)
    numpy.random.seed(2)
    torch.manual_seed(3)
    # Odd numbers of gaussian draws leave a cached second value in both python and numpy.
    random.gauss(0, 1)
    numpy.random.standard_normal(1)
    state = json.loads(json.dumps(capture_rng_state()))
    expected = _draws()
    _draws()  # move every generator on
    random.seed(99)
    restore_rng_state(state)
    assert _draws() == expected


def test_rng_state_holds_each_generator() -> None:
    state = capture_rng_state()
    assert set(state) >= {"python", "numpy", "torch"}
    assert ("cuda" in state) == torch.cuda.is_available()


def test_cuda_rng_state_of_the_current_device(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cuda_state = torch.arange(16, dtype=torch.uint8)
    asked: list[int] = []
    restored: list[tuple[torch.Tensor, int]] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    monkeypatch.setattr(
        torch.cuda, "get_rng_state", lambda device: asked.append(device) or cuda_state
    )
    monkeypatch.setattr(
        torch.cuda, "set_rng_state", lambda state, device: restored.append((state, device))
    )
    state = json.loads(json.dumps(capture_rng_state()))
    restore_rng_state(state)
    assert asked == [3]
    assert len(restored) == 1 and restored[0][1] == 3
    assert torch.equal(restored[0][0], cuda_state)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="llava_kit"):
        restore_rng_state(state)
    assert "CUDA is not available" in caplog.text
    assert len(restored) == 1


def _weights() -> dict[str, torch.Tensor]:
    shared = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    return {
        "llm.embed.weight": shared,
        "llm.lm_head.weight": shared,  # tied: the same storage under two names
        "connector.proj.weight": torch.arange(6, dtype=torch.float32)
        .reshape(2, 3)
        .t(),  # not contiguous
        "connector.proj.bias": torch.tensor([0.5, -1.25], dtype=torch.bfloat16),
    }


def _trained_optimizer() -> tuple[nn.Linear, torch.optim.AdamW, LambdaLR]:
    torch.manual_seed(0)
    layer = nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-2)
    scheduler = LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
    for _ in range(2):
        layer(torch.ones(1, 3)).sum().backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return layer, optimizer, scheduler


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    layer, optimizer, scheduler = _trained_optimizer()
    rng = capture_rng_state()
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    directory = step_checkpoint_dir(tmp_path / "pretrain", 20)
    assert directory.name == "step-00000020"
    saved = save_checkpoint(
        directory,
        weights=_weights(),
        optimizer=state,
        trainer_state={"step": 20, "epoch": 0.5, "samples_seen": 160, "rng": rng},
    )
    assert saved == directory
    assert sorted(p.name for p in directory.iterdir()) == [
        "COMPLETE",
        "checksums.json",
        "model.safetensors",
        "optimizer.pt",
        "trainer_state.json",
    ]
    assert [p.name for p in (tmp_path / "pretrain").iterdir()] == ["step-00000020"]

    loaded = load_checkpoint(directory)
    for name, tensor in _weights().items():
        assert loaded.weights[name].dtype == tensor.dtype
        assert torch.equal(loaded.weights[name], tensor), name
    assert loaded.trainer_state == {"step": 20, "epoch": 0.5, "samples_seen": 160, "rng": rng}

    # A fresh optimizer fed the loaded state takes exactly the step the original takes.
    fresh_layer = nn.Linear(3, 2)
    fresh_layer.load_state_dict(layer.state_dict())
    fresh_optimizer = torch.optim.AdamW(fresh_layer.parameters(), lr=1e-2)
    fresh_scheduler = LambdaLR(fresh_optimizer, lambda step: 1.0 / (step + 1))
    assert loaded.optimizer is not None
    fresh_optimizer.load_state_dict(loaded.optimizer["optimizer"])
    fresh_scheduler.load_state_dict(loaded.optimizer["scheduler"])
    for module, opt, sched in (
        (layer, optimizer, scheduler),
        (fresh_layer, fresh_optimizer, fresh_scheduler),
    ):
        module(torch.ones(1, 3)).sum().backward()
        opt.step()
        sched.step()
    assert torch.equal(layer.weight, fresh_layer.weight)
    assert fresh_scheduler.get_last_lr() == scheduler.get_last_lr()


def test_checkpoint_without_optimizer(tmp_path: Path) -> None:
    save_checkpoint(
        tmp_path / "final",
        weights={"w": torch.ones(2)},
        optimizer=None,
        trainer_state={"stage": "pretrain"},
    )
    loaded = load_checkpoint(tmp_path / "final")
    assert loaded.optimizer is None
    assert not (tmp_path / "final" / "optimizer.pt").exists()


def test_marker_is_written_last_and_extra_files_are_inside(tmp_path: Path) -> None:
    directory = tmp_path / "final"
    seen: dict[str, object] = {}

    def write_extra(temp: Path) -> None:
        seen["temp"] = temp.name
        seen["files"] = sorted(p.name for p in temp.iterdir())
        seen["published"] = directory.exists()
        (temp / "connector.safetensors").write_bytes(b"x")

    save_checkpoint(
        directory,
        weights={"w": torch.ones(1)},
        optimizer={"a": 1},
        trainer_state={},
        write_extra=write_extra,
    )
    assert seen["temp"].startswith("final.tmp-")  # type: ignore[union-attr]
    assert seen["files"] == ["model.safetensors", "optimizer.pt", "trainer_state.json"]
    assert seen["published"] is False
    assert (directory / "connector.safetensors").read_bytes() == b"x"
    assert (directory / "COMPLETE").is_file()


def test_replacing_a_checkpoint_leaves_no_leftovers(tmp_path: Path) -> None:
    directory = tmp_path / "final"
    save_checkpoint(
        directory, weights={"w": torch.zeros(2)}, optimizer=None, trainer_state={"v": 1}
    )
    save_checkpoint(directory, weights={"w": torch.ones(2)}, optimizer=None, trainer_state={"v": 2})
    loaded = load_checkpoint(directory)
    assert torch.equal(loaded.weights["w"], torch.ones(2))
    assert loaded.trainer_state == {"v": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["final"]


def test_crash_between_files_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage = tmp_path / "finetune"
    first = step_checkpoint_dir(stage, 10)
    save_checkpoint(
        first,
        weights={"w": torch.full((2,), 10.0)},
        optimizer={"lr": 1.0},
        trainer_state={"step": 10},
    )

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the writer dies after model.safetensors, before optimizer.pt

    monkeypatch.setattr(checkpoint_module.torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(
            first, weights={"w": torch.zeros(2)}, optimizer={"lr": 2.0}, trainer_state={"step": 99}
        )
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(
            step_checkpoint_dir(stage, 20),
            weights={"w": torch.zeros(2)},
            optimizer={"lr": 2.0},
            trainer_state={"step": 20},
        )

    assert [p.name for p in stage.iterdir()] == ["step-00000010"]
    assert latest_checkpoint(stage) == first
    loaded = load_checkpoint(first)
    assert torch.equal(loaded.weights["w"], torch.full((2,), 10.0))
    assert loaded.optimizer == {"lr": 1.0}
    assert loaded.trainer_state == {"step": 10}


def test_latest_skips_incomplete_and_leftover_dirs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stage = tmp_path / "pretrain"
    for step in (5, 10):
        save_checkpoint(
            step_checkpoint_dir(stage, step),
            weights={"w": torch.ones(1)},
            optimizer=None,
            trainer_state={"step": step},
        )
    # What a hard kill leaves: a temp dir without marker, and a renamed dir whose marker is gone.
    (stage / "step-00000015.tmp-4242").mkdir()
    (stage / "step-00000015.tmp-4242" / "model.safetensors").write_bytes(b"partial")
    (stage / "step-00000020").mkdir()
    (stage / "notes.txt").write_text("not a checkpoint")
    (stage / "final").mkdir()
    with caplog.at_level(logging.WARNING, logger="llava_kit"):
        assert latest_checkpoint(stage) == stage / "step-00000010"
    warned = [record.getMessage() for record in caplog.records if record.name == "llava_kit"]
    assert len(warned) == 2
    assert any("step-00000015.tmp-4242" in message for message in warned)
    assert any(
        message.startswith(f"skipping incomplete checkpoint {stage / 'step-00000020'} ")
        for message in warned
    )


def test_latest_orders_by_step_number(tmp_path: Path) -> None:
    for step in (9, 100_000_000, 10):
        save_checkpoint(
            step_checkpoint_dir(tmp_path, step),
            weights={"w": torch.ones(1)},
            optimizer=None,
            trainer_state={},
        )
    assert latest_checkpoint(tmp_path) == tmp_path / "step-100000000"


def test_latest_without_checkpoints(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path / "missing") is None
    (tmp_path / "step-00000001").mkdir()
    assert latest_checkpoint(tmp_path) is None


def test_load_refuses_an_incomplete_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "step-00000001").mkdir()
    with pytest.raises(LlavaKitError, match="step-00000001 is incomplete"):
        load_checkpoint(tmp_path / "step-00000001")


def test_prune_keeps_the_newest_complete(tmp_path: Path) -> None:
    for step in range(1, 6):
        save_checkpoint(
            step_checkpoint_dir(tmp_path, step),
            weights={"w": torch.ones(1)},
            optimizer=None,
            trainer_state={},
        )
    (tmp_path / "step-00000006").mkdir()  # incomplete: left for latest_checkpoint to report
    prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-00000004",
        "step-00000005",
        "step-00000006",
    ]
    with pytest.raises(ValueError):
        prune_checkpoints(tmp_path, keep=0)


# ------------------------------------------------------------------------ connector files
def _mlp(vision: int, hidden: int, llm: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(vision, hidden), nn.GELU(), nn.Linear(hidden, llm))


META = {"connector": "mlp2x_gelu", "options": {"depth": 2}, "vision_dim": 8, "llm_dim": 16}


def test_connector_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = _mlp(8, 16, 16)
    path = tmp_path / "connector.safetensors"
    save_connector(path, source.state_dict(), META)
    assert read_connector_meta(path) == META
    target = _mlp(8, 16, 16)
    load_connector_strict(target, path, recipe_fields=RECIPE_FIELDS)
    for name, tensor in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], tensor)


def test_connector_shape_mismatch_names_both_shapes_meta_and_recipe(tmp_path: Path) -> None:
    path = tmp_path / "connector.safetensors"
    save_connector(path, _mlp(8, 16, 16).state_dict(), META)
    target = _mlp(8, 16, 32)  # the recipe now uses an LLM 32 wide
    before = {name: tensor.clone() for name, tensor in target.state_dict().items()}
    with pytest.raises(ModelError) as error:
        load_connector_strict(target, path, recipe_fields=RECIPE_FIELDS)
    assert error.value.message == (
        f"connector weights in {path} do not fit the connector this recipe builds:\n"
        "  shape mismatch 2.weight: saved [16, 16] vs expected [32, 16]\n"
        "  shape mismatch 2.bias: saved [16] vs expected [32]\n"
        'saved with: connector mlp2x_gelu, vision_dim 8, llm_dim 16, options {"depth": 2}\n'
        "this recipe:\n"
        "  model.connector = mlp2x_gelu {}\n"
        "  model.encoder = hf_clip {'path': '/models/clip-tiny'}\n"
        "  model.llm = hf_causal_lm {'path': '/models/llama-tiny'}"
    )
    assert "model.encoder" in (error.value.hint or "")
    for name, tensor in target.state_dict().items():
        assert torch.equal(tensor, before[name]), "a failed load must not change the module"


def test_connector_missing_and_unexpected_keys(tmp_path: Path) -> None:
    path = tmp_path / "connector.safetensors"
    save_connector(path, nn.Linear(8, 16).state_dict(), {**META, "connector": "linear"})
    with pytest.raises(ModelError) as error:
        load_connector_strict(_mlp(8, 16, 16), path, recipe_fields=RECIPE_FIELDS)
    lines = error.value.message.splitlines()
    assert lines[1] == "  missing from the file: 0.weight, 0.bias, 2.weight, 2.bias"
    assert lines[2] == "  in the file but not in this connector: bias, weight"
    assert lines[3].startswith("saved with: connector linear, vision_dim 8, llm_dim 16")


def test_connector_message_stays_short_for_many_mismatches(tmp_path: Path) -> None:
    path = tmp_path / "connector.safetensors"
    save_file({f"t{i:02d}": torch.zeros(1) for i in range(20)}, path)  # no llava-kit metadata
    target = nn.ParameterDict({f"t{i:02d}": nn.Parameter(torch.zeros(2)) for i in range(20)})
    with pytest.raises(ModelError) as error:
        load_connector_strict(target, path, recipe_fields=RECIPE_FIELDS)
    lines = error.value.message.splitlines()
    assert lines[8] == "  shape mismatch t07: saved [1] vs expected [2]"
    assert lines[9] == "  ... and 12 more shape mismatches"
    assert "saved with: (no llava-kit metadata in the file)" in lines
    assert len(lines) == 15


def test_connector_file_missing_or_damaged(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="connector weights not found: .*nothing.safetensors"):
        load_connector_strict(nn.Linear(2, 2), tmp_path / "nothing.safetensors", recipe_fields={})
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"\x00\x01 not safetensors")
    with pytest.raises(ModelError, match="cannot be read"):
        load_connector_strict(nn.Linear(2, 2), damaged, recipe_fields={})


def test_save_connector_failure_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "connector.safetensors"
    save_connector(path, {"w": torch.ones(2)}, META)

    def killed(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module, "save_file", killed)
    with pytest.raises(OSError):
        save_connector(path, {"w": torch.zeros(2)}, META)
    load_connector_strict(
        nn.ParameterDict({"w": nn.Parameter(torch.zeros(2))}), path, recipe_fields={}
    )
    assert [p.name for p in tmp_path.iterdir()] == ["connector.safetensors"]


def _flip_a_bit(path: Path, offset: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _step(stage: Path, step: int, value: float) -> Path:
    return save_checkpoint(step_checkpoint_dir(stage, step), weights={"w": torch.full((4,), value)},
                           optimizer={"lr": value}, trainer_state={"step": step})


@pytest.mark.parametrize("damaged", ["model.safetensors", "optimizer.pt", "trainer_state.json"])
def test_one_flipped_bit_in_any_file_is_found_and_named(tmp_path: Path, damaged: str) -> None:
    path = _step(tmp_path, 4, 1.0)
    verify_checkpoint(path)
    _flip_a_bit(path / damaged, offset=len((path / damaged).read_bytes()) // 2)
    with pytest.raises(DamagedCheckpoint) as raised:
        load_checkpoint(path)
    assert f"{path / damaged} does not match the checksum" in raised.value.message


def test_resume_passes_over_a_damaged_checkpoint_to_the_previous_good_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _step(tmp_path, 2, 2.0)
    newest = _step(tmp_path, 4, 4.0)
    _flip_a_bit(newest / "model.safetensors")
    with caplog.at_level(logging.WARNING, logger="llava_kit"):
        good = latest_checkpoint(tmp_path)
    assert good == step_checkpoint_dir(tmp_path, 2)
    assert torch.equal(load_checkpoint(good).weights["w"], torch.full((4,), 2.0))
    warned = [r.getMessage() for r in caplog.records if r.name == "llava_kit"]
    assert any(m.startswith("skipping damaged checkpoint") and "step-00000004" in m for m in warned)


@pytest.mark.parametrize("tamper", ["delete_checksums", "delete_weights", "escape_path"])
def test_a_checkpoint_that_cannot_be_verified_is_refused(tmp_path: Path, tamper: str) -> None:
    path = _step(tmp_path, 4, 1.0)
    manifest = path / "checksums.json"
    if tamper == "delete_checksums":
        manifest.unlink()
    elif tamper == "delete_weights":
        (path / "model.safetensors").unlink()
    else:
        listed = json.loads(manifest.read_text())
        listed["files"]["../../outside"] = "0" * 64
        manifest.write_text(json.dumps(listed))
    with pytest.raises(DamagedCheckpoint):
        verify_checkpoint(path)
    assert latest_checkpoint(tmp_path) is None


def test_a_final_checkpoint_vouches_for_the_connector_beside_it(tmp_path: Path) -> None:
    save_connector(tmp_path / "connector.safetensors", {"w": torch.ones(3)}, META)
    final = save_checkpoint(tmp_path / "final", weights={"connector.w": torch.ones(3)},
                            optimizer=None, trainer_state={}, beside=("connector.safetensors",))
    verify_checkpoint(final)
    _flip_a_bit(tmp_path / "connector.safetensors")
    with pytest.raises(DamagedCheckpoint, match="connector.safetensors does not match"):
        verify_checkpoint(final)


def test_an_integer_connector_file_is_refused_not_cast(tmp_path: Path) -> None:
    target = _mlp(8, 16, 16)
    path = tmp_path / "int8.safetensors"
    save_file({k: v.to(torch.int8) for k, v in target.state_dict().items()}, str(path))
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ModelError, match=r"are not floating point: .*\(I8\)"):
        load_connector_strict(target, path, recipe_fields=RECIPE_FIELDS)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
