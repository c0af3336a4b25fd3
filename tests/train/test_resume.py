"""A run killed with SIGKILL mid-stage and resumed ends with the uninterrupted weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

STEPS = ["--set", "stages.finetune.epochs=4", "--set", "stages.finetune.save_every_steps=1"]


def llava_kit(*args: str) -> list[str]:
    return [sys.executable, "-m", "llava_kit.cli", *args]


def final_weights(run_dir: Path) -> dict:
    return load_file(run_dir / "checkpoints" / "finetune" / "final" / "model.safetensors")


@pytest.mark.slow
def test_sigkill_then_resume_reaches_the_same_weights(write_recipe, tmp_path: Path,
                                                      kill_after_first_checkpoint) -> None:
    recipe = write_recipe()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    straight = tmp_path / "straight"
    subprocess.run(llava_kit("run", str(recipe), "--output-dir", str(straight), *STEPS),
                   check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    kill_after_first_checkpoint(llava_kit("run", str(recipe), "--output-dir", str(killed), *STEPS),
                                env, killed / "checkpoints" / "finetune", timeout=120)

    resumed = subprocess.run(
        llava_kit("run", str(recipe), "--output-dir", str(killed), "--resume", *STEPS),
        env=env, capture_output=True, text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    expected, got = final_weights(straight), final_weights(killed)
    assert expected.keys() == got.keys()
    for name in expected:
        assert (expected[name] == got[name]).all(), name
