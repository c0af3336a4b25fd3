"""The recipe schema: defaults, field checks and the checks that span several fields."""

from __future__ import annotations

from typing import Any

import pytest

from llava_kit.errors import RecipeError
from llava_kit.recipes import validate_recipe
from llava_kit.recipes.problems import MAX_PROBLEMS


def _set(recipe: dict[str, Any], dotted_path: str, value: Any) -> dict[str, Any]:
    *parents, last = dotted_path.split(".")
    node = recipe
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return recipe


def _problems(registry, recipe: dict[str, Any]) -> list[str]:
    with pytest.raises(RecipeError) as info:
        validate_recipe(recipe, registry=registry)
    return [line.strip() for line in str(info.value).splitlines()[1:]]


def test_defaults(registry, toy_recipe) -> None:
    recipe = validate_recipe(toy_recipe, registry=registry)

    assert recipe.description is None
    assert (recipe.model.max_length, recipe.model.image_position) == (2048, "image_first")
    stage = recipe.stages["pretrain"]
    assert stage.enabled and stage.template is None and stage.lora is None
    assert (stage.epochs, stage.max_steps, stage.init_connector_from, stage.save_every_steps) == (1.0, None, None, None)
    assert (stage.gradient_checkpointing, stage.keep_checkpoints) == (False, 1)
    assert stage.optimizer.model_dump() == {
        "lr": 1e-3, "connector_lr": None, "weight_decay": 0.0, "betas": (0.9, 0.999), "eps": 1e-8,
        "warmup_ratio": 0.03, "schedule": "cosine", "max_grad_norm": 1.0,
    }
    assert recipe.runtime.model_dump() == {
        "seed": 42, "device": "auto", "precision": "auto", "deepspeed": "none", "output_dir": None,
        "num_workers": 0, "log_every": None, "demo_data": None,
        "on_bad_sample": "error", "on_nan": "stop",
        "feature_cache": None, "compile": False, "trackers": [], "token_store": None,
    }
    assert recipe.eval == {}


def test_trainable_mixes_groups_and_prefixes_in_order(registry, toy_recipe) -> None:
    trainable = ["connector", "prefix:llm.model.layers.0", "llm"]
    _set(toy_recipe, "stages.pretrain.trainable", trainable)

    stage = validate_recipe(toy_recipe, registry=registry).stages["pretrain"]

    assert stage.trainable == trainable


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("runtime.deepspeed", "zero3_offload"),
        ("runtime.deepspeed", "configs/ds.json"),
        ("stages.pretrain.lora", {"r": 8}),
        ("stages.pretrain.epochs", 0.5),
        ("stages.pretrain.optimizer.warmup_ratio", 0),
        ("stages.pretrain.optimizer.max_grad_norm", None),
        ("name", "llava-v1.5_7b.sqa"),
    ],
)
def test_accepted_values(registry, toy_recipe, path: str, value: Any) -> None:
    if path.endswith("lora"):
        _set(toy_recipe, "stages.pretrain.trainable", ["connector", "llm"])

    validate_recipe(_set(toy_recipe, path, value), registry=registry)


def test_null_deepspeed_means_none(registry, toy_recipe) -> None:
    recipe = validate_recipe(_set(toy_recipe, "runtime.deepspeed", None), registry=registry)

    assert recipe.runtime.deepspeed == "none"


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("stages.pretrain.enabled", False, "stages: no enabled stage; enable one (enabled: true) or add a stage"),
        ("stages", {}, "stages: no stages; add at least one (e.g. pretrain) under stages"),
        ("stages.pretrain.batch", {"global_size": 10, "micro_size": 4},
         "stages.pretrain.batch.global_size: 10 is not divisible by micro_size 4; gradient accumulation "
         "needs global_size = micro_size x accumulation steps x GPUs"),
        ("stages.pretrain.batch.micro_size", 0, "stages.pretrain.batch.micro_size: must be greater than 0, got 0 (int)"),
        ("stages.pretrain.epochs", 0, "stages.pretrain.epochs: must be greater than 0, got 0 (int)"),
        ("stages.pretrain.max_steps", 2.5,
         "stages.pretrain.max_steps: must be a valid integer, got 2.5 (float)"),
        ("stages.pretrain.optimizer.lr", 0, "stages.pretrain.optimizer.lr: must be greater than 0, got 0 (int)"),
        ("stages.pretrain.optimizer.lr", "fast", "stages.pretrain.optimizer.lr: must be a valid number, got 'fast'"),
        ("stages.pretrain.optimizer.warmup_ratio", 1.0,
         "stages.pretrain.optimizer.warmup_ratio: must be less than 1, got 1.0 (float)"),
        ("stages.pretrain.optimizer.betas", [0.9, 1.0], "stages.pretrain.optimizer.betas[1]: must be in [0, 1), got 1.0"),
        ("stages.pretrain.optimizer.schedule", "cosin",
         "stages.pretrain.optimizer.schedule: must be one of 'cosine', 'linear' or 'constant', got 'cosin'; "
         "did you mean 'cosine'?"),
        ("stages.pretrain.optimizer.warmup_ration", 0.1,
         "stages.pretrain.optimizer.warmup_ration: unknown key; did you mean 'warmup_ratio'?"),
        ("stages.pretrain.trainable", ["conector"],
         "stages.pretrain.trainable[0]: unknown trainable 'conector'; use connector, llm, encoder or "
         "prefix:<module.path>; did you mean 'connector'?"),
        ("stages.pretrain.trainable", ["connector", "prefix:"],
         "stages.pretrain.trainable[1]: 'prefix:': after 'prefix:' give a dotted module path, "
         "e.g. prefix:llm.model.layers.0"),
        ("stages.pretrain.trainable", ["llm", "llm"], "stages.pretrain.trainable[1]: 'llm' is listed twice"),
        ("stages.pretrain.trainable", [], "stages.pretrain.trainable: is empty: list what this stage trains, "
         "e.g. connector"),
        ("stages.pretrain.lora", {"r": 8},
         "stages.pretrain.lora: LoRA adapts the LLM, but 'llm' is not in trainable; add it or set lora: null"),
        ("stages.pretrain.lora", {"r": 8, "target_modules": []},
         "stages.pretrain.lora.target_modules: list should have at least 1 item after validation, "
         "not 0, got [] (list)"),
        ("runtime.deepspeed", "zero4", "runtime.deepspeed: must be one of none, zero2, zero3, zero3_offload or "
         "a path to a .json file, got 'zero4'; did you mean 'zero3'?"),
        ("runtime.device", "gpu", "runtime.device: must be one of 'auto', 'cpu' or 'cuda', got 'gpu'; did you mean 'cpu'?"),
        ("model.image_position", "first",
         "model.image_position: must be one of 'image_first', 'question_first' or 'random', got 'first'; "
         "did you mean 'image_first'?"),
        ("model.max_length", "long", "model.max_length: must be a valid integer, got 'long'"),
        ("name", "my run", "name: 'my run' names the run directory: use letters, digits, '_', '.', '-' "
         "and start with a letter or digit"),
        ("name", None, "name: must be a valid string, got None (NoneType)"),
        ("nmae", "x", "nmae: unknown key; did you mean 'name'?"),
        ("stages.pretrain.epochz", 2, "stages.pretrain.epochz: unknown key; did you mean 'epochs'?"),
        ("runtime.zzz", 1, "runtime.zzz: unknown key; valid keys here: seed, device, precision, deepspeed, "
         "output_dir, num_workers, log_every, demo_data, on_bad_sample, on_nan, feature_cache, compile, ..."),
        ("stages.pretrain.enabled", "maybe", "stages.pretrain.enabled: must be a valid boolean, got 'maybe'"),
        ("model.template", None, "model.template: must be a template name or a mapping with 'name' and "
         "its options, got None (NoneType)"),
    ],
)
def test_each_bad_value_is_one_clear_problem(registry, toy_recipe, path: str, value: Any, problem: str) -> None:
    if path.endswith("lora") and "target_modules" in value:
        _set(toy_recipe, "stages.pretrain.trainable", ["connector", "llm"])

    assert _problems(registry, _set(toy_recipe, path, value)) == [f"<recipe>: {problem}"]


def test_stage_and_eval_names_become_directories(registry, toy_recipe) -> None:
    toy_recipe["stages"]["stage 2"] = toy_recipe["stages"]["pretrain"]
    toy_recipe["eval"] = {"../up": "toy_eval"}

    assert _problems(registry, toy_recipe) == [
        "<recipe>: stages.stage 2: the name 'stage 2' becomes a directory: use letters, digits, '_', '.', '-' "
        "and start with a letter or digit",
        "<recipe>: eval.../up: the name '../up' becomes a directory: use letters, digits, '_', '.', '-' "
        "and start with a letter or digit",
    ]


def test_non_text_stage_name(registry, toy_recipe) -> None:
    toy_recipe["stages"][2] = toy_recipe["stages"]["pretrain"]

    assert _problems(registry, toy_recipe) == ["<recipe>: stages[2]: the name 2 (int) must be text; put it in quotes"]


def test_missing_sections_are_all_reported(registry) -> None:
    assert _problems(registry, {"name": "x", "stages": {"s": {"trainable": ["llm"]}}}) == [
        "<recipe>: model: required field is missing",
        "<recipe>: stages.s.data: required field is missing",
        "<recipe>: stages.s.batch: required field is missing",
        "<recipe>: stages.s.optimizer: required field is missing",
    ]


def test_every_problem_is_collected_into_one_error(registry, toy_recipe) -> None:
    _set(toy_recipe, "model.connector", "toy_mlp2x_gelo")
    _set(toy_recipe, "stages.pretrain.optimizer.lr", "fast")
    _set(toy_recipe, "runtime.precision", "bf32")

    with pytest.raises(RecipeError) as info:
        validate_recipe(toy_recipe, registry=registry)

    lines = str(info.value).splitlines()
    assert lines[0] == "<recipe> is not a valid recipe (3 problems):"
    assert [line.split(": ")[1] for line in lines[1:]] == [
        "model.connector", "stages.pretrain.optimizer.lr", "runtime.precision"
    ]


def test_problem_list_is_capped_to_one_screen(registry, toy_recipe) -> None:
    for index in range(MAX_PROBLEMS + 5):
        toy_recipe[f"extra_{index}"] = index

    with pytest.raises(RecipeError) as info:
        validate_recipe(toy_recipe, registry=registry)

    lines = str(info.value).splitlines()
    assert lines[0] == f"<recipe> is not a valid recipe ({MAX_PROBLEMS + 5} problems):"
    assert len(lines) == 1 + MAX_PROBLEMS + 1
    assert lines[-1] == "  ... and 5 more; fix the ones above first"
