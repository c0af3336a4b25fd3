"""The tiny two-stage recipe on synthetic ScienceQA (2 steps a stage), and the environment
that keeps every tracker offline and inside the test's folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from llava_kit.demo.synth_scienceqa import synth_scienceqa
from llava_kit.tiny.recipe import tiny_recipe


@pytest.fixture(scope="module")
def tracker_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tracker_synth") / "scienceqa"
    synth_scienceqa(out, n=48, seed=0)
    return out


@pytest.fixture(scope="module")
def two_step_recipe(tracker_data: Path) -> Callable[[list[Any]], dict[str, Any]]:
    """Two optimizer steps a stage, finetune with a step checkpoint to resume from, and the
    given trackers."""
    def make(trackers: list[Any]) -> dict[str, Any]:
        recipe = tiny_recipe(tracker_data, [
            "stages.pretrain.data.limit=16", "stages.finetune.data.limit=16",
            "stages.finetune.save_every_steps=1",
        ])
        recipe["runtime"]["trackers"] = trackers
        return recipe
    return make


@pytest.fixture(scope="module")
def offline_trackers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """wandb offline, MLflow's file store allowed, every tool's own files under one folder."""
    home = tmp_path_factory.mktemp("tracker_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("WANDB_DIR", raising=False)  # wandb's files go to the run directory
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        for name, value in {
            "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off",
            "WANDB_CONFIG_DIR": str(home / "wandb-config"),
            "WANDB_CACHE_DIR": str(home / "wandb-cache"),
            "WANDB_DATA_DIR": str(home / "wandb-data"),
            "MLFLOW_ALLOW_FILE_STORE": "true",
        }.items():
            patch.setenv(name, value)
        yield home
