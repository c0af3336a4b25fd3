"""Grid files -> validated cells: a base recipe plus named variants and/or axes of values.

A grid YAML ``extends`` a recipe (path relative to the grid file) and lists
``variants`` (one-at-a-time ``dotted.path: value`` overrides, applied like ``--set``; the
``baseline`` cell has none) and/or ``axes`` (``dotted.path: [values]``, every combination).
With both, each variant is crossed with each combination of the axes. ``common`` overrides
apply to every cell first (the baseline included). Every cell is validated as a whole
recipe before anything runs.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llava_kit.errors import RecipeError
from llava_kit.grid.resources import Resources, parse_resources
from llava_kit.recipes import Recipe, apply_overrides, resolve_raw, validate_recipe
from llava_kit.recipes.loader import display_path
from llava_kit.recipes.problems import show_value
from llava_kit.recipes.sources import Sources
from llava_kit.recipes.yaml_io import read_mapping

BASELINE = "baseline"
GRID_KEYS = ("extends", "name", "description", "common", "variants", "axes", "resources")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class Cell:
    """One recipe of the grid: its name, the overrides that make it, the validated recipe."""

    name: str
    overrides: dict[str, Any]
    recipe: Recipe
    grid: str | None = None  # the grid's name: the group of the cells' tracker runs


@dataclass
class Grid:
    name: str
    path: Path
    base: Path
    description: str | None
    cells: list[Cell] = field(default_factory=list)
    resources: Resources = field(default_factory=Resources)  # what each cell runs on

    @property
    def baseline(self) -> str:
        """The reference cell for deltas: ``baseline`` with variants, else the first cell."""
        names = [cell.name for cell in self.cells]
        return BASELINE if BASELINE in names else names[0]

    def select(self, only: list[str]) -> list[Cell]:
        """The cells named in ``only`` (all when empty); unknown names are an error."""
        if not only:
            return list(self.cells)
        known = {cell.name: cell for cell in self.cells}
        unknown = [name for name in only if name not in known]
        if unknown:
            raise RecipeError(
                f"{display_path(self.path)}: --only names no cell {', '.join(map(repr, unknown))}",
                hint=f"cells of this grid: {', '.join(known)}",
            )
        return [known[name] for name in only if name in known]


def load_grid(path: Path | str) -> Grid:
    """Read a grid file, expand its cells and validate each as a full recipe."""
    path = Path(path)
    label = display_path(path)
    data = read_mapping(path, label)
    unknown = [key for key in data if key not in GRID_KEYS]
    if unknown:
        raise RecipeError(
            f"{label}: unknown grid key(s) {', '.join(map(repr, unknown))}; a grid file has "
            f"{', '.join(GRID_KEYS)}",
            hint="put recipe changes for every cell in the base recipe, or in a variant",
        )
    extends = data.get("extends")
    if not isinstance(extends, str) or not extends.strip():
        raise RecipeError(
            f"{label}: extends: must be the path of the base recipe (relative to the grid "
            f"file), got {show_value(extends)}"
        )
    base = path.parent / extends
    if not base.is_file():
        raise RecipeError(
            f"{label}: extends: {extends!r} not found (looked for {display_path(base)})"
        )
    name = data.get("name")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise RecipeError(
            f"{label}: name: must name the grid's directory (letters, digits, '_', '.', '-'), "
            f"got {show_value(name)}"
        )
    grid = Grid(name, path, base, data.get("description"),
                resources=parse_resources(data.get("resources"), label))
    common = data.get("common") or {}
    if not isinstance(common, dict):
        raise RecipeError(
            f"{label}: common: must be a mapping of dotted.path: value, got {show_value(common)}"
        )
    _check_paths(common, f"{label}: common")
    raw_base = resolve_raw(base)
    for cell_name, overrides in expand_cells(data, label):
        recipe = validate_cell(raw_base, cell_name, {**common, **overrides}, label)
        grid.cells.append(Cell(cell_name, overrides, recipe, grid=name))
    return grid


def expand_cells(data: dict[str, Any], label: str) -> list[tuple[str, dict[str, Any]]]:
    """(cell name, overrides) for every cell: variants (with baseline) crossed with axes."""
    variants = _variants(data.get("variants"), label)
    axes = _axes(data.get("axes"), label)
    if not variants and not axes:
        raise RecipeError(
            f"{label}: the grid has no cells; add variants (name: {{dotted.path: value}}) "
            "or axes (dotted.path: [values])"
        )
    rows = [(BASELINE, {}), *variants.items()] if variants else [(None, {})]
    combos: list[tuple[str | None, dict[str, Any]]] = [(None, {})]
    if axes:
        keys = list(axes)
        combos = [
            (_axes_name(keys, values), dict(zip(keys, values)))
            for values in itertools.product(*axes.values())
        ]
    cells: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for row_name, row in rows:
        for combo_name, combo in combos:
            name = "_".join(part for part in (row_name, combo_name) if part)
            if name in seen:
                raise RecipeError(
                    f"{label}: two cells are both named {name!r}; rename a variant or change "
                    "an axis value"
                )
            seen.add(name)
            cells.append((name, {**row, **combo}))
    return cells


def validate_cell(
    raw_base: dict[str, Any], name: str, overrides: dict[str, Any], label: str
) -> Recipe:
    """The base recipe with the cell's overrides, validated; errors name the cell and field."""
    sources = Sources(f"{label}: cell {name!r}")
    texts = [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    try:
        raw = apply_overrides(raw_base, texts, sources)
    except RecipeError as exc:
        raise RecipeError(f"{label}: cell {name!r}: {exc.message}", hint=exc.hint) from None
    raw["name"] = f"{raw.get('name', 'recipe')}-{name}"
    return validate_recipe(raw, sources=sources)


def _variants(value: Any, label: str) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecipeError(
            f"{label}: variants: must map variant names to {{dotted.path: value}}, "
            f"got {show_value(value)}"
        )
    for name, overrides in value.items():
        where = f"{label}: variants.{name}"
        if name == BASELINE:
            raise RecipeError(
                f"{where}: {BASELINE!r} is the base recipe itself; give the variant another name"
            )
        _check_name(str(name), where)
        if not isinstance(overrides, dict) or not overrides:
            raise RecipeError(
                f"{where}: must be a non-empty mapping of dotted.path: value, "
                f"got {show_value(overrides)}",
                hint="e.g. last_layer: {model.encoder.select_layer: -1}",
            )
        _check_paths(overrides, where)
    return {str(name): dict(overrides) for name, overrides in value.items()}


def _axes(value: Any, label: str) -> dict[str, list[Any]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecipeError(
            f"{label}: axes: must map dotted.path to a list of values, got {show_value(value)}"
        )
    _check_paths(value, f"{label}: axes")
    for key, values in value.items():
        if not isinstance(values, list) or not values:
            raise RecipeError(
                f"{label}: axes.{key}: must be a non-empty list of values, "
                f"got {show_value(values)}",
                hint=f"e.g. {key}: [1, 2]",
            )
    return {key: list(values) for key, values in value.items()}


def _check_paths(overrides: dict[Any, Any], where: str) -> None:
    for key in overrides:
        if not isinstance(key, str) or not all(part.strip() for part in key.split(".")):
            raise RecipeError(
                f"{where}: {show_value(key)} is not a dotted field path like stages.finetune.epochs"
            )


def _check_name(name: str, where: str) -> None:
    if not _NAME_RE.fullmatch(name):
        raise RecipeError(
            f"{where}: the name becomes a directory: use letters, digits, '_', '.', '-' and "
            "start with a letter or digit"
        )


def _axes_name(keys: list[str], values: tuple[Any, ...]) -> str:
    """``select_layer-1_lr-0.001``: the last part of each path with its value."""
    parts = []
    for key, value in zip(keys, values):
        text = value if isinstance(value, str) else json.dumps(value)
        parts.append(f"{key.split('.')[-1]}-{_UNSAFE.sub('', str(text))}")
    return "_".join(parts)
