"""Crash safety through the real CLI: SIGTERM, kill -9 during a checkpoint write, NaN and
out-of-memory. The child process is slowed or broken at a known step by a small patch run
before the CLI's main() (see conftest.cli_command): it wraps ``llava_kit.train.step.optimizer_step``,
the one function the stage loop calls for each step's forward and backward passes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

STAGE = "pretrain"
TOTAL_STEPS = 8  # 8 samples, global batch 2, two epochs


def _recipe(kit: SimpleNamespace, sqa: Path, folder: Path, **runtime: Any) -> Path:
    recipe = kit.llava_recipe(sqa, folder)
    stage = recipe["stages"][STAGE]
    stage.update(epochs=2, save_every_steps=2, batch={"global_size": 2, "micro_size": 1})
    recipe["runtime"].update(runtime)
    return kit.save_recipe(folder / "recipe.yaml", recipe)


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "checkpoints" / STAGE / "final" / "model.safetensors")


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def _at_call(number: int, action: str) -> str:
    """A patch running ``action`` (with ``result`` bound) after optimizer step ``number``."""
    return f"""
import os, signal, torch
from llava_kit.train import step
_original = step.optimizer_step
_calls = [0]
def _patched(*args, **kwargs):
    result = _original(*args, **kwargs)
    _calls[0] += 1
    if _calls[0] == {number}:
        {action}
    return result
step.optimizer_step = _patched
"""


def _wait_for(flag: Path, child: subprocess.Popen[bytes], point: str) -> None:
    """Until the patched child writes ``flag`` at ``point`` of its run."""
    deadline = time.monotonic() + 600
    while not flag.exists():
        assert child.poll() is None, f"the run ended before {point}"
        assert time.monotonic() < deadline, f"the run never reached {point}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, sqa: Path, kit: SimpleNamespace) -> dict[str, torch.Tensor]:
    folder = tmp_path_factory.mktemp("uninterrupted")
    recipe = _recipe(kit, sqa, folder)
    done = kit.run_cli(["run", str(recipe), "--no-eval"], folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return _final_weights(folder / "run")


def test_sigterm_saves_a_checkpoint_and_resume_gives_the_same_weights(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace, uninterrupted: dict[str, torch.Tensor]
) -> None:
    recipe = _recipe(kit, sqa, tmp_path)
    stopped = kit.run_cli(
        ["run", str(recipe), "--no-eval"], tmp_path,
        patch=_at_call(3, "os.kill(os.getpid(), signal.SIGTERM)"),
    )
    shown = stopped.stdout + stopped.stderr
    assert stopped.returncode != 0
    assert f"stopped by SIGTERM in stage {STAGE} after step 3" in shown
    assert "--resume" in shown and "Traceback" not in shown
    stage_dir = tmp_path / "run" / "checkpoints" / STAGE
    assert (stage_dir / "step-00000003" / "COMPLETE").is_file()
    assert not (stage_dir / "final").exists()

    resumed = kit.run_cli(["run", str(recipe), "--no-eval", "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_weights(_final_weights(tmp_path / "run"), uninterrupted)


def test_resume_passes_over_a_damaged_checkpoint_and_still_reaches_the_same_weights(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace, uninterrupted: dict[str, torch.Tensor]
) -> None:
    recipe = _recipe(kit, sqa, tmp_path)
    stopped = kit.run_cli(
        ["run", str(recipe), "--no-eval", "--set", f"stages.{STAGE}.keep_checkpoints=2"],
        tmp_path, patch=_at_call(5, "os.kill(os.getpid(), signal.SIGTERM)"),
    )
    assert stopped.returncode != 0
    stage_dir = tmp_path / "run" / "checkpoints" / STAGE
    newest = stage_dir / "step-00000005" / "model.safetensors"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit, as a failing disk leaves it
    newest.write_bytes(bytes(data))

    resumed = kit.run_cli(["run", str(recipe), "--no-eval", "--resume", "--set",
                           f"stages.{STAGE}.keep_checkpoints=2"], tmp_path)
    shown = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, shown[-3000:]
    assert "skipping damaged checkpoint" in shown and str(newest) in shown
    # It went on from step 4, the newest good checkpoint, to the uninterrupted weights.
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r.get("stage") == STAGE and "loss" in r]
    assert steps == [1, 2, 3, 4, 5, 5, 6, 7, 8]
    _assert_same_weights(_final_weights(tmp_path / "run"), uninterrupted)


def test_kill_9_during_a_checkpoint_write_then_resume(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace, uninterrupted: dict[str, torch.Tensor]
) -> None:
    recipe = _recipe(kit, sqa, tmp_path)
    flag = tmp_path / "writing-complete-marker"
    # Pause the step-4 checkpoint just before its COMPLETE marker, where a crash hurts most.
    patch = f"""
import time
from pathlib import Path
from llava_kit.train import checkpoint
_original = checkpoint.write_complete_marker
def _slow(directory):
    if directory.name.startswith("step-00000004"):
        Path({str(flag)!r}).write_text("writing")
        time.sleep(600)
    _original(directory)
checkpoint.write_complete_marker = _slow
"""
    child = subprocess.Popen(
        kit.cli_command(["run", str(recipe), "--no-eval"], patch), cwd=tmp_path,
        env=kit.child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(flag, child, "the step-4 checkpoint")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    stage_dir = tmp_path / "run" / "checkpoints" / STAGE
    leftovers = [p for p in stage_dir.iterdir() if p.name.startswith("step-00000004")]
    assert [p.name.split(".")[1].split("-")[0] for p in leftovers] == ["tmp"]
    assert not (leftovers[0] / "COMPLETE").exists()
    assert (stage_dir / "step-00000002" / "COMPLETE").is_file()

    # The killed writer's lock file is still there; the OS released its lock with it.
    assert (tmp_path / "run" / ".writer.lock").is_file()
    resumed = kit.run_cli(["run", str(recipe), "--no-eval", "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "left over from a checkpoint write that was interrupted" in resumed.stderr
    _assert_same_weights(_final_weights(tmp_path / "run"), uninterrupted)


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace
) -> None:
    recipe = _recipe(kit, sqa, tmp_path)
    done = kit.run_cli(
        ["run", str(recipe), "--no-eval"], tmp_path,
        patch=_at_call(5, "result = result._replace(loss=float('nan'))"),
    )
    shown = done.stdout + done.stderr
    stage_dir = tmp_path / "run" / "checkpoints" / STAGE
    assert done.returncode != 0
    assert f"stage {STAGE}: the loss is nan at step 5" in shown
    assert f"the last good checkpoint is {stage_dir / 'step-00000004'}" in " ".join(shown.split())
    assert "Traceback" not in shown
    assert (stage_dir / "step-00000004" / "COMPLETE").is_file()
    assert not (stage_dir / "final").exists()


def test_nan_with_skip_batch_drops_only_that_step(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace
) -> None:
    recipe = _recipe(kit, sqa, tmp_path, on_nan="skip_batch")
    done = kit.run_cli(
        ["run", str(recipe), "--no-eval"], tmp_path,
        patch=_at_call(5, "result = result._replace(loss=float('inf'))"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"stage {STAGE}: the loss is inf at step 5; skipping that optimizer step" in done.stderr
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [record["step"] for record in records if record.get("stage") == STAGE and "loss" in record]
    assert steps == [1, 2, 3, 4, 6, 7, 8]


def test_out_of_memory_names_the_settings_to_change(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace
) -> None:
    recipe = _recipe(kit, sqa, tmp_path)
    done = kit.run_cli(
        ["run", str(recipe), "--no-eval"], tmp_path,
        patch=_at_call(2, "raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')"),
    )
    shown = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0
    assert f"stage {STAGE}: out of GPU memory at step 2 (batch.micro_size 1)" in shown
    for knob in (f"stages.{STAGE}.batch.micro_size", f"stages.{STAGE}.gradient_checkpointing",
                 "runtime.deepspeed: zero3", "zero3_offload"):
        assert knob in shown, knob
    assert "Traceback" not in shown


def test_resume_while_the_run_is_still_training_is_refused(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace
) -> None:
    recipe = _recipe(kit, sqa, tmp_path)
    flag = tmp_path / "training"
    pause = f"from pathlib import Path; Path({str(flag)!r}).write_text('step 2'); time.sleep(600)"
    child = subprocess.Popen(
        kit.cli_command(["run", str(recipe), "--no-eval"], "import time\n" + _at_call(2, pause)),
        cwd=tmp_path, env=kit.child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    run = tmp_path / "run"
    try:
        _wait_for(flag, child, "step 2")
        before = kit.snapshot(run)
        second = kit.run_cli(["run", str(recipe), "--no-eval", "--resume"], tmp_path)
        shown = " ".join((second.stdout + second.stderr).split())
        assert second.returncode == 2, shown
        assert f"run directory {run} is in use: process {child.pid} on" in shown
        assert "Traceback" not in shown
        assert kit.snapshot(run) == before  # the second writer wrote nothing
    finally:
        child.kill()
        child.wait(timeout=60)
