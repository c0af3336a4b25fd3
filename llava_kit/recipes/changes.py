"""What a resumed run may change about its recipe: nothing that alters its numbers.

``--resume`` continues the optimizer, the schedule and the data order where they stopped;
a different learning rate, batch or dataset would be silently ignored or mixed in, and
``recipe.resolved.yaml`` would describe a run that never happened.
"""

from __future__ import annotations

from typing import Any

from llava_kit.errors import RecipeError
from llava_kit.recipes.yaml_io import parse_yaml

# Settings of how a run is carried out, not of what it computes (the feature and token
# caches give bit-identical results; a tracker added on resume is sent the earlier steps first).
OPERATIONAL_FIELDS = frozenset({
    "description", "runtime.output_dir", "runtime.num_workers", "runtime.log_every",
    "runtime.feature_cache", "runtime.trackers", "runtime.token_store",
})


def changed_fields(before: Any, after: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Every dotted field whose value differs, with its old and new value."""
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in [*before, *(k for k in after if k not in before)]:
            path = f"{prefix}.{key}" if prefix else str(key)
            found += changed_fields(before.get(key), after.get(key), path)
        return found
    return [] if before == after else [(prefix, before, after)]


def check_resume_recipe(resolved_yaml: str, new_yaml: str, resolved_label: str) -> None:
    """Refuse to resume with a recipe that differs from the run's beyond operational fields."""
    before = parse_yaml(resolved_yaml, resolved_label)
    after = parse_yaml(new_yaml, "the recipe given to --resume")
    changes = [c for c in changed_fields(before, after) if c[0] not in OPERATIONAL_FIELDS]
    if changes:
        shown = "; ".join(f"{path}: {old!r} -> {new!r}" for path, old, new in changes[:8])
        more = f" (and {len(changes) - 8} more)" if len(changes) > 8 else ""
        raise RecipeError(
            f"--resume: the recipe differs from the run's {resolved_label} in {len(changes)} "
            f"field(s) that change what it computes: {shown}{more}",
            hint="resume with the run's own recipe (pass its recipe.resolved.yaml), or start "
            "a new run (another --output-dir) with the changed recipe",
        )
