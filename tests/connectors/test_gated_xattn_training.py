"""gated_xattn through the real training path: stage 1 trains only the connector's blocks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from llava_kit.demo.synth_scienceqa import synth_scienceqa
from llava_kit.model.build import build_model
from llava_kit.recipes import load_recipe
from llava_kit.tiny.recipe import tiny_recipe
from llava_kit.train.distributed import DistributedContext
from llava_kit.train.metrics import MetricsLogger
from llava_kit.pipeline import run_recipe
from llava_kit.train.context import RunContext
from llava_kit.train.runner import StageRunner
from llava_kit.train.trained_model import load_trained_model

FUSION = [
    "model.connector.name=gated_xattn", "model.connector.num_heads=2",
    "model.connector.dim_head=8", "model.connector.ff_mult=2", "model.connector.num_latents=4",
]


@pytest.fixture(scope="module")
def recipe_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gated_xattn")
    data = root / "scienceqa"
    synth_scienceqa(data, n=80, seed=0)
    recipe = tiny_recipe(data, [
        "name=tiny-fusion", "model.encoder.config.num_hidden_layers=1",
        "stages.pretrain.data.limit=24", "stages.pretrain.batch.micro_size=8",
        "stages.finetune.data.limit=16", "stages.finetune.batch.micro_size=4",
        "stages.finetune.optimizer.warmup_ratio=0.0", "stages.finetune.optimizer.weight_decay=0.0",
        f"eval={{sqa: {{name: scienceqa, root: '{data}', split: test, prompt_format: QCM-A,"
        " limit: 3, batch_size: 3, max_new_tokens: 4}}",
    ])
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def test_stage1_changes_every_block_tensor_and_leaves_the_llm_bit_identical(
    recipe_path: Path, tmp_path: Path
) -> None:
    recipe = load_recipe(recipe_path, FUSION)
    assert recipe.model.connector.name == "gated_xattn"
    model = build_model(recipe.model)
    ctx = RunContext(
        recipe=recipe, run_dir=tmp_path / "run", dist=DistributedContext(0, 1, 0, "cpu"),
        device=torch.device("cpu"), precision="fp32",
        metrics=MetricsLogger(tmp_path / "metrics.jsonl"), resume=False,
    )
    start = snapshot(model)
    StageRunner(ctx, model, "pretrain", recipe.stages["pretrain"], None).run()
    after = model.state_dict()
    changed = {name for name, tensor in start.items() if not torch.equal(tensor, after[name])}
    connector = {name for name in start if name.startswith("connector.")}
    assert any(name.startswith("connector.blocks.1.attn.") for name in connector)
    assert any(name.startswith("connector.resampler.") for name in connector)
    assert changed == connector, "stage 1 changes every connector tensor and nothing else"


def test_two_stages_and_evaluation_through_run_recipe(recipe_path: Path, tmp_path: Path) -> None:
    recipe = load_recipe(recipe_path, FUSION)
    run_dir = run_recipe(recipe, recipe_yaml=recipe_path.read_text(), run_dir=tmp_path / "run").run_dir
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in records} == {"pretrain", "finetune"}
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records)

    fresh = build_model(recipe.model)
    trained = load_trained_model(recipe, run_dir)
    gates = [float(block.attn_gate.detach()) for block in trained.connector.blocks.values()]
    assert all(gate != 0.0 for gate in gates), "training opens the gates"
    before, after = fresh.llm.state_dict(), trained.llm.state_dict()
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[n], after[n]) for n in before), "stage 2 trains the LLM"
    # The evaluator generated through the fused model (images encoded once, KV cache on).
    [predictions] = run_dir.rglob("*_predictions.jsonl")
    assert len(predictions.read_text().splitlines()) == 3
