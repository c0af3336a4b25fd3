"""What each stage may change, bit for bit, and what the run directory holds."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from llava_kit.model.build import build_model
from llava_kit.pipeline import run_recipe
from llava_kit.recipes import load_recipe
from llava_kit.train.checkpoint import load_checkpoint
from llava_kit.train.context import RunContext
from llava_kit.train.distributed import DistributedContext
from llava_kit.train.metrics import MetricsLogger
from llava_kit.train.run_dir import RunDir
from llava_kit.train.runner import StageRunner
from llava_kit.train.trained_model import load_trained_model


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def changed(before: dict[str, torch.Tensor], model: torch.nn.Module) -> set[str]:
    after = model.state_dict()
    return {name for name, tensor in before.items() if not torch.equal(tensor, after[name])}


def test_stage1_changes_only_the_connector_and_stage2_never_the_encoder(
    write_recipe, tmp_path: Path
) -> None:
    recipe = load_recipe(write_recipe())
    model = build_model(recipe.model)
    ctx = RunContext(
        recipe=recipe, run_dir=tmp_path / "run", dist=DistributedContext(0, 1, 0, "cpu"),
        device=torch.device("cpu"), precision="fp32",
        metrics=MetricsLogger(tmp_path / "metrics.jsonl"), resume=False,
    )
    start = snapshot(model)
    StageRunner(ctx, model, "pretrain", recipe.stages["pretrain"], None).run()
    stage1 = changed(start, model)
    connector = {n for n in start if n.startswith("connector.")}
    assert stage1 == connector, "stage 1 must change every connector tensor and nothing else"

    after_stage1 = snapshot(model)
    StageRunner(ctx, model, "finetune", recipe.stages["finetune"], "pretrain").run()
    stage2 = changed(after_stage1, model)
    assert not any(n.startswith("encoder.") for n in stage2), "stage 2 never changes the encoder"
    assert connector <= stage2
    assert any(n.startswith("llm.") for n in stage2)


def test_run_directory_and_reloading_the_trained_model(write_recipe, tmp_path: Path) -> None:
    path = write_recipe()
    recipe = load_recipe(path)
    run_dir = tmp_path / "run"
    run_recipe(recipe, recipe_yaml=path.read_text(), run_dir=run_dir)

    for name in ("recipe.resolved.yaml", "provenance.json", "metrics.jsonl", "report.md", "loss.png"):
        assert (run_dir / name).is_file(), name
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in records} == {"pretrain", "finetune"}
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "samples_per_s"} <= set(records[0])
    assert (run_dir / "checkpoints" / "pretrain" / "connector.safetensors").is_file()
    assert "pretrain" in (run_dir / "report.md").read_text()

    # The run directory alone gives back the trained model: the built model with each
    # stage's saved tensors applied in stage order, every other tensor as built.
    fresh = snapshot(build_model(recipe.model))
    expected = dict(fresh)
    for name in recipe.enabled_stages:
        saved = load_checkpoint(RunDir(run_dir).stage(name).final).weights
        assert saved and any(not torch.equal(saved[k], fresh[k]) for k in saved), name
        expected.update(saved)
    reloaded = load_trained_model(recipe, run_dir).state_dict()
    assert reloaded.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(reloaded[name], tensor), name


def test_disabled_stage_is_skipped(write_recipe, tmp_path: Path) -> None:
    path = write_recipe()
    recipe = load_recipe(path, ["stages.pretrain.enabled=false"])
    run_dir = tmp_path / "run"
    run_recipe(recipe, recipe_yaml=path.read_text(), run_dir=run_dir, evaluate=False)
    assert not (run_dir / "checkpoints" / "pretrain").exists()
    assert (run_dir / "checkpoints" / "finetune" / "final" / "COMPLETE").is_file()


def test_lora_stage_trains_adapters_only_and_merges(write_recipe, tmp_path: Path) -> None:
    from peft import PeftModel

    from llava_kit.train.lora import merge_lora

    path = write_recipe()
    recipe = load_recipe(path, [
        "stages.pretrain.enabled=false",
        "stages.finetune.lora={r: 4, alpha: 8, dropout: 0.0, target_modules: [q_proj, v_proj]}",
    ])
    run_dir = tmp_path / "run"
    run_recipe(recipe, recipe_yaml=path.read_text(), run_dir=run_dir, evaluate=False)

    base = build_model(recipe.model)
    trained = load_trained_model(recipe, run_dir)
    assert isinstance(trained.llm, PeftModel)
    lora = {n: p for n, p in trained.llm.named_parameters() if "lora_" in n}
    assert lora and any(float(p.abs().sum()) > 0 for n, p in lora.items() if "lora_B" in n)
    # The base weights stayed as built: only adapters (and the connector) were trained.
    base_state = base.llm.state_dict()
    for name, tensor in trained.llm.get_base_model().state_dict().items():
        if "lora_" not in name:
            key = name.replace(".base_layer", "")
            assert torch.equal(tensor, base_state[key]), name

    ids = torch.tensor([[1, 5, 6, 7]])
    with torch.no_grad():
        before = trained.llm(input_ids=ids).logits
        merge_lora(trained)
        after = trained.llm(input_ids=ids).logits
    assert not isinstance(trained.llm, PeftModel)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
