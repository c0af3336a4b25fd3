"""A tiny trained run (run_recipe on synthetic ScienceQA) to chat with."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from llava_kit.demo.synth_scienceqa import synth_scienceqa


def train_conftest():
    """tests/train/conftest.py as a module, for its tiny_recipe (tests are not a package)."""
    path = Path(__file__).parents[1] / "train" / "conftest.py"
    spec = importlib.util.spec_from_file_location("llava_kit_tests_train_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _make_run(root: Path, data: Path, edit=None) -> Path:
    """Train the tiny two-stage recipe (8 samples a stage) into ``root / "run"``."""
    from llava_kit.recipes import load_recipe
    from llava_kit.pipeline import run_recipe

    raw = train_conftest().tiny_recipe(data)
    for stage in raw["stages"].values():
        stage["data"]["limit"] = 8
    if edit is not None:
        edit(raw)
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    run_dir = root / "run"
    run_recipe(load_recipe(path), recipe_yaml=path.read_text(), run_dir=run_dir, evaluate=False)
    return run_dir


@pytest.fixture(scope="session")
def make_run():
    """``make_run(root, data, edit)``: train the tiny recipe (``edit`` changes the raw recipe)."""
    return _make_run


@pytest.fixture(scope="session")
def chat_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("chat_synth") / "scienceqa"
    synth_scienceqa(out, n=40, seed=0)
    return out


@pytest.fixture(scope="session")
def chat_run(tmp_path_factory: pytest.TempPathFactory, chat_data: Path) -> Path:
    return _make_run(tmp_path_factory.mktemp("chat_run"), chat_data)


@pytest.fixture(scope="session")
def image_path(chat_data: Path) -> Path:
    return sorted(chat_data.glob("train/*/image.png"))[0]
