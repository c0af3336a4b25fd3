"""Every recipe under recipes/ validates offline; the paper recipes encode the paper's runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llava_kit.errors import DataError
from llava_kit.model.build import instantiate
from llava_kit.recipes import load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
GRID_KEYS = ("variants", "axes")


def _is_grid(path: Path) -> bool:
    """Grid files (checked by the grid tests): under recipes/ablations or with variants/axes."""
    if "ablations" in path.relative_to(RECIPES).parts[:-1]:
        return True
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return isinstance(raw, dict) and any(key in raw for key in GRID_KEYS)


SHIPPED = sorted(path for path in RECIPES.rglob("*.yaml") if not _is_grid(path))


def test_the_paper_recipes_are_shipped() -> None:
    names = {path.name for path in SHIPPED}
    assert {
        "paper_pretrain_cc595k.yaml", "paper_finetune_instruct158k.yaml", "paper_scienceqa.yaml",
        "llava15_pretrain.yaml", "llava15_finetune.yaml", "llava15_finetune_lora.yaml",
        "scienceqa_tiny.yaml",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(RECIPES)))
def test_shipped_recipe_validates(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.enabled_stages


def _stage(name: str, stage: str):
    return load_recipe(RECIPES / name).stages[stage]


def test_paper_pretrain_cc595k() -> None:
    recipe = load_recipe(RECIPES / "paper_pretrain_cc595k.yaml")
    stage = recipe.stages["pretrain"]
    assert recipe.model.encoder.options.path == "openai/clip-vit-large-patch14"
    assert recipe.model.encoder.options.select_layer == -2
    assert recipe.model.connector.name == "linear"
    assert recipe.model.llm.options.path == "lmsys/vicuna-13b-v1.3"
    assert stage.template.name == "plain" and stage.trainable == ["connector"]
    assert (stage.batch.global_size, stage.batch.micro_size) == (128, 16)  # 16 x 8 GPUs
    assert (stage.optimizer.lr, stage.epochs) == (2e-3, 1)
    assert recipe.runtime.deepspeed == "zero2" and recipe.runtime.precision == "bf16"


def test_paper_finetune_instruct158k() -> None:
    recipe = load_recipe(RECIPES / "paper_finetune_instruct158k.yaml")
    assert list(recipe.enabled_stages) == ["finetune"]
    stage = recipe.stages["finetune"]
    assert stage.data.name == "llava_json" and stage.init_connector_from is not None
    assert stage.trainable == ["connector", "llm"]
    assert (stage.batch.global_size, stage.optimizer.lr, stage.epochs) == (32, 2e-5, 3)


def test_paper_scienceqa() -> None:
    recipe = load_recipe(RECIPES / "paper_scienceqa.yaml")
    assert list(recipe.enabled_stages) == ["pretrain", "finetune"]
    stage = recipe.stages["finetune"]
    assert stage.data.name == "scienceqa" and stage.data.options.prompt_format == "QCM-LEA"
    assert stage.data.options.split == "train"
    assert (stage.batch.global_size, stage.optimizer.lr, stage.epochs) == (32, 2e-5, 12)
    assert (stage.optimizer.warmup_ratio, stage.optimizer.weight_decay) == (0.03, 0.0)
    assert stage.optimizer.schedule == "cosine" and stage.gradient_checkpointing
    assert recipe.model.max_length == 2048
    test = recipe.eval["test"]
    assert test.name == "scienceqa" and test.options.split == "test"
    assert test.options.prompt_format == "QCM-LEA" and test.options.max_new_tokens >= 1024


def test_llava15_recipes() -> None:
    pretrain = load_recipe(RECIPES / "llava15_pretrain.yaml")
    assert pretrain.model.connector.name == "mlp2x_gelu"
    assert pretrain.model.encoder.options.path == "openai/clip-vit-large-patch14-336"
    stage = pretrain.stages["pretrain"]
    assert (stage.batch.global_size, stage.optimizer.lr) == (256, 1e-3)

    finetune = load_recipe(RECIPES / "llava15_finetune.yaml")
    stage = finetune.stages["finetune"]
    assert finetune.model.encoder.options.image_aspect_ratio == "pad"
    assert finetune.model.llm.options.path == "lmsys/vicuna-13b-v1.5"
    assert finetune.runtime.deepspeed == "zero3"
    assert (stage.batch.global_size, stage.optimizer.lr, stage.epochs) == (128, 2e-5, 1)

    lora = load_recipe(RECIPES / "llava15_finetune_lora.yaml").stages["finetune"]
    assert (lora.lora.r, lora.lora.alpha) == (128, 256)
    assert (lora.optimizer.lr, lora.optimizer.connector_lr) == (2e-4, 2e-5)


def test_missing_cc595k_says_where_to_get_it_and_which_field(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the recipe's default data path does not exist here
    stage = load_recipe(RECIPES / "paper_pretrain_cc595k.yaml").stages["pretrain"]
    with pytest.raises(DataError) as info:
        instantiate(stage.data).load()
    text = f"{info.value.message} {info.value.hint}"
    assert "data/cc595k/chat.json" in text
    assert "stages.<stage>.data.path" in text
    assert "liuhaotian/LLaVA-CC3M-Pretrain-595K" in text


def test_missing_scienceqa_says_where_to_get_it(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    stage = load_recipe(RECIPES / "paper_scienceqa.yaml").stages["finetune"]
    with pytest.raises(DataError) as info:
        instantiate(stage.data).load()
    assert "lupantech/ScienceQA" in (info.value.hint or "")
    assert "data.root" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("name", "legacy"),
    [("paper_pretrain_cc595k.yaml", True), ("paper_finetune_instruct158k.yaml", True),
     ("paper_scienceqa.yaml", True), ("llava15_pretrain.yaml", None),
     ("llava15_finetune.yaml", None), ("llava15_finetune_lora.yaml", None)],
)
def test_vicuna_recipes_tokenize_as_the_reference(name: str, legacy: bool | None) -> None:
    # The reference loads Vicuna's tokenizer with use_fast=False; v1.3's config names no
    # legacy mode, so it ran in legacy mode; v1.5's runs use the mode its config names.
    options = load_recipe(RECIPES / name).model.llm.options
    assert options.use_fast_tokenizer is False
    assert options.tokenizer_legacy is legacy
