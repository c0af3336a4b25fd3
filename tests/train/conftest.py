"""Synthetic ScienceQA and the tiny two-stage recipe on it, for end-to-end training tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Mapping

import pytest
import yaml

from llava_kit.demo.synth_scienceqa import synth_scienceqa
from llava_kit.tiny.recipe import tiny_recipe


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "scienceqa"
    synth_scienceqa(out, n=160, seed=0)
    return out


@pytest.fixture()
def write_recipe(tmp_path: Path, synth_data: Path) -> Callable[..., Path]:
    def write(name: str = "recipe.yaml", **runtime: object) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(tiny_recipe(synth_data, **runtime), sort_keys=False))
        return path
    return write


def _kill_after_first_checkpoint(command: list[str], env: Mapping[str, str], stage_dir: Path,
                                 timeout: float) -> None:
    """Runs ``command`` and SIGKILLs it, launcher and every rank (a session of its own), as
    soon as ``stage_dir`` holds a complete step checkpoint and before the stage finished."""
    process = subprocess.Popen(command, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not list(stage_dir.glob("step-*/COMPLETE")) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert list(stage_dir.glob("step-*/COMPLETE")), "no step checkpoint before the kill"
    assert not (stage_dir / "final").exists(), "the kill must land before the stage finished"


@pytest.fixture()
def kill_after_first_checkpoint() -> Callable[..., None]:
    return _kill_after_first_checkpoint
