"""One grid cell: materialise stored stages, run the recipe (training the rest), record the outcome.

Runs in the grid's process (``--parallel 1``) or as ``python -m llava_kit.grid.worker GRID
GRID_DIR CELL`` (one subprocess per cell). The outcome goes to ``cells/<cell>/cell.json``;
publishing the newly trained stages to the store is the executor's job.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from llava_kit.atomic_files import atomic_write_text
from llava_kit.errors import LlavaKitError
from llava_kit.grid.plan import CELL_FILE, STORE_DIR, cell_dir
from llava_kit.grid.spec import Cell
from llava_kit.grid.store import StageStore
from llava_kit.train.run_dir import RunDir, write_resolved_recipe

log = logging.getLogger("llava_kit")


def run_cell(cell: Cell, keys: dict[str, str], cell_key: str, grid_dir: Path) -> dict[str, Any]:
    """Run one cell into a fresh ``cells/<name>``; returns (and writes) its record."""
    run_dir = cell_dir(grid_dir, cell.name)
    started = time.perf_counter()
    record: dict[str, Any] = {
        "cell": cell.name, "key": cell_key, "overrides": cell.overrides, "keys": keys,
        "status": "failed", "metrics": {}, "stages": {}, "error": None,
    }
    reused: set[str] = set()
    try:
        store = StageStore(grid_dir / STORE_DIR)
        metrics = _train_and_evaluate(cell, keys, run_dir, store, reused)
        record.update(status="ok", metrics=metrics)
    except LlavaKitError as exc:
        record["error"] = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
    except Exception as exc:  # noqa: BLE001 - one cell's crash must not stop the grid
        record["error"] = f"{type(exc).__name__}: {exc}"
        log.error("cell %s failed:\n%s", cell.name, traceback.format_exc())
    record["stages"] = _stage_outcomes(cell, run_dir, reused)
    record["seconds"] = time.perf_counter() - started
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CELL_FILE, json.dumps(record, indent=2) + "\n")
    return record


def _train_and_evaluate(
    cell: Cell, keys: dict[str, str], run_dir: Path, store: StageStore, reused: set[str]
) -> dict[str, dict[str, float]]:
    """Train what the store lacks (``reused`` collects the stages taken from it), evaluate."""
    from llava_kit.demo.prepare import ensure_demo_data
    from llava_kit.pipeline import run_recipe
    from llava_kit.recipes import recipe_to_yaml

    recipe = cell.recipe
    if run_dir.exists():  # an earlier, different or failed, run of this cell
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    recipe_yaml = recipe_to_yaml(recipe)
    # Resuming is how a run skips finished stages: the stored ones are put in place first,
    # under the recipe a resume checks against.
    write_resolved_recipe(run_dir, recipe_yaml)
    for stage, key in keys.items():
        if store.take(key):
            store.materialise(key, run_dir, stage)
            reused.add(stage)
    ensure_demo_data(recipe)
    return run_recipe(recipe, recipe_yaml=recipe_yaml, run_dir=run_dir, resume=True).metrics


def _stage_outcomes(cell: Cell, run_dir: Path, reused: set[str]) -> dict[str, str]:
    outcomes = {}
    for name, stage in cell.recipe.stages.items():
        if not stage.enabled:
            outcomes[name] = "disabled"
        elif name in reused:
            outcomes[name] = "reused"
        else:
            outcomes[name] = "trained" if RunDir(run_dir).stage(name).is_reusable() else "not finished"
    return outcomes


def main(argv: list[str]) -> int:
    """Subprocess entry: GRID_FILE GRID_DIR CELL."""
    from llava_kit.grid.keys import cell_key, stage_keys
    from llava_kit.grid.spec import load_grid
    from llava_kit.train.distributed import shutdown_distributed

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    grid_file, grid_dir, name = argv
    cell = load_grid(Path(grid_file)).select([name])[0]
    record = run_cell(cell, stage_keys(cell.recipe), cell_key(cell.recipe), Path(grid_dir))
    shutdown_distributed()
    return 0 if record["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
