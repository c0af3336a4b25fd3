"""A 2-process ZeRO run killed mid-stage resumes, each rank with its own optimizer partition."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file


def command(recipe: Path, out: Path, zero: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "llava_kit.cli", "run", str(recipe), "--output-dir", str(out),
        "--nproc", "2", "--set", f"runtime.deepspeed={zero}", "--set", "stages.finetune.epochs=3",
        "--set", "stages.finetune.save_every_steps=1", *extra,
    ]


@pytest.mark.distributed
@pytest.mark.parametrize("zero", ["zero2", "zero3"])
def test_killed_two_process_run_resumes_to_the_same_weights(
    write_recipe, tmp_path: Path, zero: str, kill_after_first_checkpoint,
) -> None:
    recipe = write_recipe()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(command(recipe, tmp_path / "straight", zero), env=env, check=True,
                   capture_output=True, timeout=600)

    killed = tmp_path / "killed"
    kill_after_first_checkpoint(command(recipe, killed, zero), env,
                                killed / "checkpoints" / "finetune", timeout=300)

    resumed = subprocess.run(command(recipe, killed, zero, "--resume"), env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    final = Path("checkpoints") / "finetune" / "final" / "model.safetensors"
    expected, got = load_file(tmp_path / "straight" / final), load_file(killed / final)
    assert expected.keys() == got.keys()
    for name in expected:
        assert (expected[name] - got[name]).abs().max() < 1e-6, name
