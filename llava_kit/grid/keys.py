"""Stage keys: a hash of everything that decides what a stage writes.

A stage's key covers the resolved model section, the stage's own resolved spec (minus
settings that only decide when files are written or evaluations run), the key of the
previous enabled stage, the seed, the runtime settings that change numerics, and the
versions of the packages that compute them. Evaluation settings and later stages are not
in it, so changing them reuses the trained stages. The data files are named by their paths,
not hashed: a dataset rewritten in place under the same path is not noticed.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llava_kit.recipes.schema import Recipe

KEY_LENGTH = 16
_VERSIONED = ("llava-kit", "torch", "transformers", "deepspeed", "peft")
# Stage fields that change when files are written or evaluations run, not the weights.
_NOT_NUMERIC = ("eval_every_epoch", "save_every_steps", "keep_checkpoints")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_LENGTH]


def runtime_numerics(recipe: "Recipe") -> dict[str, Any]:
    """The runtime settings that change a stage's numbers (not paths, workers or logging)."""
    runtime = recipe.runtime
    numerics: dict[str, Any] = {
        "seed": runtime.seed, "device": runtime.device, "precision": runtime.precision,
        "deepspeed": runtime.deepspeed,
        "demo_data": runtime.demo_data.model_dump(mode="json") if runtime.demo_data else None,
    }
    config = Path(runtime.deepspeed)
    if runtime.deepspeed.endswith(".json") and config.is_file():
        numerics["deepspeed_config"] = hashlib.sha256(config.read_bytes()).hexdigest()
    return numerics


def stage_keys(recipe: "Recipe", versions: dict[str, str] | None = None) -> dict[str, str]:
    """The key of each enabled stage, in order; each chains on the previous enabled stage's."""
    versions = package_versions() if versions is None else versions
    model = recipe.model.model_dump(mode="json")
    numerics = runtime_numerics(recipe)
    keys: dict[str, str] = {}
    previous: str | None = None
    for name, stage in recipe.enabled_stages.items():
        spec = stage.model_dump(mode="json", exclude=set(_NOT_NUMERIC))
        previous = digest({
            "stage": name, "spec": spec, "model": model, "previous": previous,
            "runtime": numerics, "versions": versions,
        })
        keys[name] = previous
    return keys


def cell_key(recipe: "Recipe", versions: dict[str, str] | None = None) -> str:
    """The whole cell: every stage plus evaluation settings and trackers (not the name,
    output dir or progress lines)."""
    versions = package_versions() if versions is None else versions
    dumped = recipe.model_dump(mode="json", exclude={"name", "description"})
    dumped["runtime"].pop("output_dir", None)
    dumped["runtime"].pop("log_every", None)
    # A cell given trackers runs again (its stages reused) so that its tracker runs exist;
    # without any, the key is the one cells had before trackers existed.
    if not dumped["runtime"].get("trackers"):
        dumped["runtime"].pop("trackers", None)
    return digest({"recipe": dumped, "versions": versions})
