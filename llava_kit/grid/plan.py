"""What a grid run will do: per cell and stage, train or reuse, and who shares what.

Planning reads only recipes and the store, so ``--dry-run`` works offline without
loading any weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llava_kit.errors import DataError
from llava_kit.grid.keys import cell_key, package_versions, stage_keys
from llava_kit.grid.spec import Cell, Grid
from llava_kit.grid.store import StageStore
from llava_kit.json_io import read_json

CELLS_DIR = "cells"
STORE_DIR = "store"
CELL_FILE = "cell.json"

TRAIN, REUSE, DISABLED = "train", "reuse", "disabled"
# A cell record's status: ``running`` until the cell ends; ``stopped`` by a signal after
# saving a checkpoint (the next run resumes).
OK, FAILED, RUNNING, STOPPED = "ok", "failed", "running", "stopped"


@dataclass
class StagePlan:
    stage: str
    key: str | None  # None for a disabled stage
    action: str  # train | reuse | disabled
    shared_with: list[str] = field(default_factory=list)  # other cells with the same key


@dataclass
class CellPlan:
    cell: Cell
    key: str
    stages: list[StagePlan]
    up_to_date: bool  # finished earlier with this exact recipe: nothing runs

    @property
    def name(self) -> str:
        return self.cell.name

    @property
    def keys(self) -> dict[str, str]:
        return {s.stage: s.key for s in self.stages if s.key is not None}


def cell_dir(grid_dir: Path, name: str) -> Path:
    return grid_dir / CELLS_DIR / name


def read_cell_record(grid_dir: Path, name: str) -> dict[str, Any] | None:
    """The cell's outcome, or None before its first run. A damaged record is an error, not
    "never run": running the cell again would replace the cell's folder."""
    path = cell_dir(grid_dir, name) / CELL_FILE
    if not path.is_file():
        return None
    hint = f"delete {path} (or its cell folder) to run the cell again"
    record = read_json(path, hint=hint)
    if not isinstance(record, dict):
        raise DataError(f"{path}: not a cell record (a JSON object)", hint=hint)
    return record


def plan_grid(grid: Grid, grid_dir: Path, cells: list[Cell]) -> list[CellPlan]:
    store = StageStore(grid_dir / STORE_DIR)
    versions = package_versions()
    keyed = [(cell, stage_keys(cell.recipe, versions)) for cell in cells]
    users: dict[str, list[str]] = {}
    for cell, keys in keyed:
        for key in keys.values():
            users.setdefault(key, []).append(cell.name)
    plans = []
    for cell, keys in keyed:
        whole = cell_key(cell.recipe, versions)
        record = read_cell_record(grid_dir, cell.name)
        up_to_date = bool(record and record.get("key") == whole and record.get("status") == OK)
        stages = []
        for name, stage in cell.recipe.stages.items():
            if not stage.enabled:
                stages.append(StagePlan(name, None, DISABLED))
                continue
            key = keys[name]
            action = REUSE if up_to_date or store.has(key) else TRAIN
            others = [user for user in users[key] if user != cell.name]
            stages.append(StagePlan(name, key, action, others))
        plans.append(CellPlan(cell, whole, stages, up_to_date))
    return plans


def describe_plan(plans: list[CellPlan]) -> list[str]:
    """Lines for ``--dry-run``: each cell, each stage's action and the cells sharing it.

    Of several cells that train the same key, the first trains it and the others reuse it.
    """
    lines: list[str] = []
    trained_by: dict[str, str] = {}
    runs = 0
    for plan in plans:
        overrides = ", ".join(f"{k}={json.dumps(v)}" for k, v in plan.cell.overrides.items())
        status = " (up to date: nothing runs)" if plan.up_to_date else ""
        lines.append(f"cell {plan.name}{status}: {overrides or 'no overrides'}")
        for stage in plan.stages:
            if stage.action == DISABLED:
                lines.append(f"  {stage.stage}: disabled")
                continue
            shared = f"; shared with {', '.join(stage.shared_with)}" if stage.shared_with else ""
            if stage.action == REUSE:
                what = "reuse stored"
            elif stage.key in trained_by:
                what = f"reuse (trained by cell {trained_by[stage.key]} in this run)"
            else:
                what = "train"
                trained_by[stage.key] = plan.name
                runs += 1
            lines.append(f"  {stage.stage}: {what} [key {stage.key}]{shared}")
    lines.append(f"{len(plans)} cells, {runs} stage runs to train")
    return lines
