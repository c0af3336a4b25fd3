"""Getting a model back from disk: a training run directory, or a ``llava-kit`` export.

A ``llava-kit`` export (``llava-kit export RUN --format llava-kit``) holds the run's recipe,
the whole model's weights in one safetensors file (LoRA merged) and the tokenizer. The
recipe rebuilds the architecture the way the run did, then every weight comes from the
export, so the model equals the trained one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llava_kit.errors import LlavaKitError, ModelError

if TYPE_CHECKING:
    from llava_kit.model.vlm import LlavaModel
    from llava_kit.recipes.schema import Recipe

EXPORT_MANIFEST = "llava_kit_export.json"
EXPORT_RECIPE = "recipe.yaml"
EXPORT_WEIGHTS = "model.safetensors"
EXPORT_TOKENIZER = "tokenizer"
EXPORT_FORMAT_VERSION = 1


def load_run(run_dir: Path) -> tuple["Recipe", "LlavaModel"]:
    """The run's recipe and its trained model (eval mode); every enabled stage must have finished."""
    from llava_kit.recipes import load_recipe
    from llava_kit.train.run_dir import RunDir
    from llava_kit.train.trained_model import load_trained_model

    run_dir = Path(run_dir)
    layout = RunDir(run_dir)
    recipe_path = layout.resolved_recipe
    if not recipe_path.is_file():
        raise LlavaKitError(
            f"{run_dir} is not a run directory: it holds no {recipe_path.name}",
            hint="pass the folder `llava-kit run` wrote (runs/<recipe>/<time>)",
        )
    recipe = load_recipe(recipe_path)
    missing = [name for name in recipe.enabled_stages if not layout.stage(name).is_finished()]
    if missing:
        # A model missing a stage's weights would answer, export or score as if trained.
        stages = ", ".join(repr(name) for name in missing)
        raise LlavaKitError(
            f"{run_dir}: stage {stages} has not finished (no complete "
            f"{layout.stage(missing[0]).final.relative_to(run_dir)}), so the run has no "
            "trained model yet",
            hint=f"finish it with `llava-kit run {recipe_path} --resume --output-dir {run_dir}`",
        )
    return recipe, load_trained_model(recipe, run_dir)


def load(directory: str | Path) -> "LlavaModel":
    """The model saved by ``llava-kit export --format llava-kit`` into ``directory`` (eval mode)."""
    from safetensors.torch import load_model

    from llava_kit.model.build import build_model
    from llava_kit.recipes import resolve_raw, validate_recipe

    directory = Path(directory)
    manifest = read_manifest(directory)
    raw = resolve_raw(directory / EXPORT_RECIPE)
    use_exported_tokenizer(raw, directory / manifest["tokenizer"])
    recipe = validate_recipe(raw)
    model = build_model(recipe.model)
    try:
        load_model(model, directory / EXPORT_WEIGHTS, strict=True)
    except RuntimeError as exc:
        raise ModelError(
            f"{directory / EXPORT_WEIGHTS} does not fit the model its recipe builds: "
            f"{str(exc).strip().splitlines()[0]}",
            hint="re-export the run; the recipe and the weights must come from the same export",
        ) from exc
    return model.eval()


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / EXPORT_MANIFEST
    if not path.is_file():
        raise LlavaKitError(
            f"{directory} is not a llava-kit export: it holds no {EXPORT_MANIFEST}",
            hint="create one with `llava-kit export RUN_DIR --format llava-kit --out DIR`",
        )
    manifest = json.loads(path.read_text())
    if manifest.get("format") != "llava-kit" or manifest.get("version") != EXPORT_FORMAT_VERSION:
        raise LlavaKitError(
            f"{path}: format {manifest.get('format')!r} version {manifest.get('version')!r} is "
            f"not llava-kit version {EXPORT_FORMAT_VERSION}",
            hint="re-export the run with this version of llava-kit",
        )
    return manifest


def use_exported_tokenizer(raw: dict[str, Any], tokenizer_dir: Path) -> None:
    """Point an ``hf_causal_lm`` LLM at the exported tokenizer, so the export needs no
    tokenizer folder from the machine that trained it."""
    llm = raw.get("model", {}).get("llm")
    if isinstance(llm, dict) and llm.get("name") == "hf_causal_lm":
        llm["tokenizer"] = str(tokenizer_dir)
