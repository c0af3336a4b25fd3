"""A base recipe (tests/train/conftest.py's tiny two-stage recipe, a few steps) and grid files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from llava_kit.demo.synth_scienceqa import synth_scienceqa


def _load(path: Path, name: str) -> Any:
    # Loaded by path: tests is not a package.
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def _train_tiny_recipe(data: Path) -> dict:
    path = Path(__file__).parents[1] / "train" / "conftest.py"
    return _load(path, "_train_conftest_for_grid").tiny_recipe(data)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A one-node SLURM cluster (slurm_cluster.py); skipped, saying why, without root or
    the packages."""
    module = _load(Path(__file__).with_name("slurm_cluster.py"), "_grid_slurm_cluster")
    try:
        cluster = module.start_cluster(tmp_path_factory.mktemp("slurm"))
    except module.ClusterUnavailable as exc:
        pytest.skip(f"no SLURM cluster on this machine: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def grid_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("grid_synth") / "scienceqa"
    synth_scienceqa(out, n=96, seed=0)
    return out


@pytest.fixture()
def grid_base(grid_data: Path) -> dict:
    """Two stages of 2 optimizer steps each and a 6-question evaluation."""
    recipe = _train_tiny_recipe(grid_data)
    recipe["stages"]["pretrain"]["data"]["limit"] = 16
    recipe["stages"]["finetune"]["data"]["limit"] = 16
    recipe["eval"] = {"test": {"name": "scienceqa", "root": str(grid_data), "split": "test",
                               "prompt_format": "QCM-A", "max_new_tokens": 4, "limit": 6}}
    return recipe


@pytest.fixture()
def write_grid(tmp_path: Path, grid_base: dict) -> Callable[..., Path]:
    """Writes base.yaml and a grid file extending it; returns the grid file's path."""
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(grid_base, sort_keys=False))

    def write(name: str = "grid.yaml", **grid: Any) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump({"extends": "base.yaml", "name": "g", **grid},
                                       sort_keys=False))
        return path
    return write
