"""Opening a trained model: a finished run directory, or a ``llava-kit`` export. The one
way in for chat, evaluation, export, serving and ``llava_kit.load``.

A ``llava-kit`` export (``llava-kit export RUN --format llava-kit``) holds the run's recipe,
the whole model's weights in one safetensors file (LoRA merged) and the tokenizer. The
recipe rebuilds the architecture the way the run did, then every weight comes from the
export, so the model equals the trained one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llava_kit.errors import LlavaKitError, ModelError
from llava_kit.json_io import read_json

if TYPE_CHECKING:
    from llava_kit.devices import DeviceChoice
    from llava_kit.model.vlm import LlavaModel
    from llava_kit.templates.base import ChatTemplate
    from llava_kit.recipes.schema import Recipe

EXPORT_MANIFEST = "llava_kit_export.json"
EXPORT_RECIPE = "recipe.yaml"
EXPORT_WEIGHTS = "model.safetensors"
EXPORT_TOKENIZER = "tokenizer"
EXPORT_FORMAT_VERSION = 1


@dataclass(frozen=True)
class OpenedModel:
    """A trained model ready to answer: the recipe that built it, the model (eval mode, on
    its device) and the template it answers in (the one it was last trained with)."""

    source: Path
    recipe_file: Path  # the YAML that rebuilds the model (resolved recipe, or the export's)
    recipe: "Recipe"
    model: "LlavaModel"
    template: "ChatTemplate"


def open_model(directory: str | Path, *, device: "DeviceChoice | None" = None) -> OpenedModel:
    """Open a finished run directory or a ``llava-kit`` export.

    ``device`` defaults to the recipe's ``runtime.device``, through the one device rule
    that training uses too.
    """
    from llava_kit.devices import resolve_device
    from llava_kit.model.build import build_template
    from llava_kit.train.run_dir import RunDir

    directory = Path(directory)
    if (directory / EXPORT_MANIFEST).is_file():
        recipe_file = directory / EXPORT_RECIPE
        recipe, model = _load_export(directory)
    elif RunDir(directory).resolved_recipe.is_file():
        recipe_file = RunDir(directory).resolved_recipe
        recipe, model = _load_run(directory)
    else:
        raise LlavaKitError(
            f"{directory} is neither a run directory (no {RunDir(directory).resolved_recipe.name})"
            f" nor a llava-kit export (no {EXPORT_MANIFEST})",
            hint="pass the folder `llava-kit run` wrote (runs/<recipe>/<time>) or one written by "
            "`llava-kit export RUN_DIR --format llava-kit --out DIR`",
        )
    model = model.to(resolve_device(device or recipe.runtime.device))
    return OpenedModel(directory, recipe_file, recipe, model, build_template(recipe.answer_template, model.tokenizer))


def load(directory: str | Path, *, device: "DeviceChoice | None" = None) -> "LlavaModel":
    """The trained model of a finished run directory or a ``llava-kit`` export (eval mode)."""
    return open_model(directory, device=device).model


def _load_run(run_dir: Path) -> tuple["Recipe", "LlavaModel"]:
    """Every enabled stage must have finished: a model missing a stage's weights would
    answer, export or score as if trained."""
    from llava_kit.recipes import load_recipe
    from llava_kit.train.run_dir import RunDir
    from llava_kit.train.trained_model import load_trained_model

    layout = RunDir(run_dir)
    recipe_path = layout.resolved_recipe
    recipe = load_recipe(recipe_path)
    missing = [name for name in recipe.enabled_stages if not layout.stage(name).is_finished()]
    if missing:
        stages = ", ".join(repr(name) for name in missing)
        raise LlavaKitError(
            f"{run_dir}: stage {stages} has not finished (no complete "
            f"{layout.stage(missing[0]).final.relative_to(run_dir)}), so the run has no "
            "trained model yet",
            hint=f"finish it with `llava-kit run {recipe_path} --resume --output-dir {run_dir}`",
        )
    return recipe, load_trained_model(recipe, run_dir)


def _load_export(directory: Path) -> tuple["Recipe", "LlavaModel"]:
    """The recipe rebuilds the architecture the way the run did; every weight comes from
    the export."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    from llava_kit.model.build import build_model
    from llava_kit.recipes import resolve_raw, validate_recipe

    manifest = read_manifest(directory)
    raw = resolve_raw(directory / EXPORT_RECIPE)
    use_exported_tokenizer(raw, directory / manifest["tokenizer"])
    recipe = validate_recipe(raw)
    model = build_model(recipe.model)
    weights = directory / EXPORT_WEIGHTS
    try:
        load_model(model, weights, strict=True)
    except (SafetensorError, OSError) as exc:
        raise ModelError(
            f"{weights} cannot be read as safetensors ({exc}): it is missing, cut short or damaged",
            hint="export the run again (`llava-kit export RUN_DIR --format llava-kit --out NEW`)",
        ) from exc
    except RuntimeError as exc:
        raise ModelError(
            f"{directory / EXPORT_WEIGHTS} does not fit the model its recipe builds: "
            f"{str(exc).strip().splitlines()[0]}",
            hint="re-export the run; the recipe and the weights must come from the same export",
        ) from exc
    return recipe, model.eval()


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / EXPORT_MANIFEST
    if not path.is_file():
        raise LlavaKitError(
            f"{directory} is not a llava-kit export: it holds no {EXPORT_MANIFEST}",
            hint="create one with `llava-kit export RUN_DIR --format llava-kit --out DIR`",
        )
    manifest = read_json(path, hint="re-export the run")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("tokenizer"), str):
        raise LlavaKitError(
            f"{path}: not a llava-kit export manifest (a JSON object naming its tokenizer folder)",
            hint="re-export the run with `llava-kit export RUN_DIR --format llava-kit`",
        )
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
