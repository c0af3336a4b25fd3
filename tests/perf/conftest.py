"""Synthetic ScienceQA and a tiny two-stage recipe, for the performance-feature tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from llava_kit.demo.synth_scienceqa import synth_scienceqa
from llava_kit.tiny.recipe import tiny_recipe as shared_tiny_recipe
from llava_kit.model.build import build_model
from llava_kit.model.vlm import LlavaModel
from llava_kit.recipes import validate_recipe
from llava_kit.recipes.schema import Recipe
from llava_kit.train.distributed import DistributedContext
from llava_kit.train.metrics import MetricsLogger, read_metrics
from llava_kit.train.context import RunContext
from llava_kit.train.runner import StageRunner


@pytest.fixture(scope="session")
def perf_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("perf_synth") / "scienceqa"
    synth_scienceqa(out, n=160, seed=0)
    return out


def tiny_recipe(data: Path, **runtime: Any) -> dict[str, Any]:
    """The shared tiny recipe with two stage-1 epochs and length-grouped stage 2."""
    return shared_tiny_recipe(data, [
        "name=perf", "stages.pretrain.epochs=2", "stages.finetune.batch.group_by_length=true",
    ], **runtime)


def _train(recipe: Recipe, run_dir: Path) -> tuple[LlavaModel, list[dict[str, Any]]]:
    """Both stages in one process, as run_recipe does; returns the model and metrics."""
    torch.manual_seed(recipe.runtime.seed)
    model = build_model(recipe.model)
    ctx = RunContext(
        recipe=recipe, run_dir=run_dir, dist=DistributedContext(0, 1, 0, "cpu"),
        device=torch.device("cpu"), precision="fp32",
        metrics=MetricsLogger(run_dir / "metrics.jsonl"), resume=False,
    )
    previous = None
    for name, stage in recipe.enabled_stages.items():
        StageRunner(ctx, model, name, stage, previous).run()
        previous = name
    return model, read_metrics(run_dir / "metrics.jsonl")


@pytest.fixture()
def make_recipe(perf_data: Path) -> Callable[..., Recipe]:
    def make(**runtime: Any) -> Recipe:
        return validate_recipe(tiny_recipe(perf_data, **runtime))
    return make


@pytest.fixture()
def train() -> Callable[[Recipe, Path], tuple[LlavaModel, list[dict[str, Any]]]]:
    return _train


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    # Tiny matmuls on a shared 2-core machine: extra threads only fight (10x slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
