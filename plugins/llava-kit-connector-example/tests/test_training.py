"""The installed plugin, found through its entry point, trains inside llava-kit."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import torch
import yaml
from llava_kit.model.build import build_model
from llava_kit.plugins.registry import build_registry
from llava_kit.recipes import load_recipe
from llava_kit.train.checkpoint import load_checkpoint
from llava_kit.tiny.recipe import tiny_recipe as llava_kit_tiny_recipe
from llava_kit.pipeline import run_recipe
from llava_kit.train.run_dir import RunDir

from llava_kit_connector_example.avgpool import AvgPoolMLPConnector
from llava_kit_connector_example.csv_tracker import CsvTracker


def tiny_recipe(data: Path) -> dict:
    """llava-kit's tiny recipe (a 32 px CLIP with patch 8: a 4x4 grid) with this connector."""
    return llava_kit_tiny_recipe(data, [
        "name=avgpool_tiny", "model.connector=avgpool2x2_mlp",
        "stages.pretrain.data.limit=4", "stages.pretrain.batch.global_size=4",
        "stages.finetune.data.limit=4", "stages.finetune.batch.global_size=4",
        "stages.finetune.optimizer.warmup_ratio=0.0", "stages.finetune.optimizer.weight_decay=0.0",
    ])


def test_the_entry_point_registers_the_connector_under_the_package_name() -> None:
    registry = build_registry()
    entry = registry.get("connector", "avgpool2x2_mlp")
    assert entry.component is AvgPoolMLPConnector
    assert entry.package == "llava-kit-connector-example"
    assert registry.get("tracker", "csv_metrics").component is CsvTracker


def test_one_step_per_stage_through_run_recipe(synth_data: Path, tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(synth_data), sort_keys=False))
    # The encoder keeps its CLS token in front of the 4x4 grid; the connector keeps it too.
    recipe = load_recipe(path, ["model.encoder.select_feature=cls_patch",
                                "model.connector.cls_token=keep",
                                "runtime.trackers=[csv_metrics]"])
    assert build_model(recipe.model).num_visual_tokens == 1 + 2 * 2
    run_dir = run_recipe(recipe, recipe_yaml=path.read_text(), run_dir=tmp_path / "run",
                         evaluate=False).run_dir

    stage1 = load_checkpoint(RunDir(run_dir).stage("pretrain").final).weights
    assert set(stage1) == {"connector.proj.0.weight", "connector.proj.0.bias",
                           "connector.proj.2.weight", "connector.proj.2.bias"}
    stage2 = load_checkpoint(RunDir(run_dir).stage("finetune").final).weights
    assert set(stage1) < set(stage2)
    assert all(torch.isfinite(t).all() for t in stage2.values())
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["stage"] for r in steps] == ["pretrain", "finetune"]
    assert all(math.isfinite(r["loss"]) for r in steps)
    # The plugin's tracker: each stage's loss, the stages end to end on one step axis.
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = {(row["metric"], int(row["step"])): float(row["value"])
                for row in csv.DictReader(handle)}
    assert rows[("pretrain/loss", 1)] == steps[0]["loss"]
    assert rows[("finetune/loss", 2)] == steps[1]["loss"]
