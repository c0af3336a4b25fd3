"""The token-family connectors with learned queries train through both stages of a run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from llava_kit.demo.synth_scienceqa import synth_scienceqa
from llava_kit.model.build import build_model
from llava_kit.pipeline import run_recipe
from llava_kit.recipes import load_recipe
from llava_kit.tiny.recipe import tiny_recipe
from llava_kit.train.checkpoint import load_checkpoint
from llava_kit.train.run import seed_everything
from llava_kit.train.run_dir import RunDir

CONNECTORS = {
    "perceiver_resampler": [
        "model.connector.name=perceiver_resampler", "model.connector.depth=2",
        "model.connector.heads=2", "model.connector.dim_head=8", "model.connector.num_latents=6",
    ],
    "qformer": [
        "model.connector.name=qformer", "model.connector.num_queries=6",
        "model.connector.num_layers=2", "model.connector.hidden_size=16",
        "model.connector.num_heads=4", "model.connector.intermediate_size=32",
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONNECTORS))
def test_trains_through_stage_1_and_stage_2(name: str, tmp_path: Path) -> None:
    data = tmp_path / "scienceqa"
    synth_scienceqa(data, n=96, seed=0)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(data), sort_keys=False))
    recipe = load_recipe(path, [*CONNECTORS[name], "stages.finetune.data.limit=16"])
    assert recipe.model.connector.name == name
    run_recipe(recipe, recipe_yaml=path.read_text(), run_dir=tmp_path / "run", evaluate=False)

    seed_everything(recipe.runtime.seed)  # as run_recipe does before building the model
    initial = build_model(recipe.model).state_dict()
    connector = {name for name in initial if name.startswith("connector.")}
    stage1 = load_checkpoint(RunDir(tmp_path / "run").stage("pretrain").final).weights
    assert set(stage1) == connector, "stage 1 trains the connector and nothing else"
    assert all(not torch.equal(stage1[n], initial[n]) for n in connector)
    stage2 = load_checkpoint(RunDir(tmp_path / "run").stage("finetune").final).weights
    assert connector < set(stage2) and not any(n.startswith("encoder.") for n in stage2)
    assert any(not torch.equal(stage2[n], initial[n]) for n in stage2 if n.startswith("llm."))
