"""One grid cell: materialise stored stages, run the recipe (training the rest), record the outcome.

Runs in the grid's process (``--parallel 1``) or as ``python -m llava_kit.grid.worker GRID
GRID_DIR CELL`` (one subprocess per cell, or under torchrun one per rank of a
multi-process cell). Rank 0 prepares the cell's folder and alone writes the outcome to
``cells/<cell>/cell.json`` (``running`` while it runs); publishing the newly trained stages
to the store is the executor's job.

A cell whose last run was interrupted (stopped by a signal, or killed while ``running``)
under the same keys resumes from its checkpoints; any other earlier run is cleared.
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
from llava_kit.grid.plan import (
    CELL_FILE, FAILED, OK, RUNNING, STOPPED, STORE_DIR, cell_dir, read_cell_record,
)
from llava_kit.grid.spec import Cell
from llava_kit.grid.store import StageStore
from llava_kit.train.distributed import broadcast_object, init_distributed
from llava_kit.train.run_dir import RunDir, write_resolved_recipe
from llava_kit.train.signals import Interrupted

log = logging.getLogger("llava_kit")


def run_cell(cell: Cell, keys: dict[str, str], cell_key: str, grid_dir: Path) -> dict[str, Any]:
    """Run one cell into a fresh ``cells/<name>``; returns (and, on rank 0, writes) its record."""
    context = init_distributed()
    is_main = context.is_main
    if context.is_distributed:
        log.info("cell %s: rank %d of %d", cell.name, context.rank, context.world_size)
    run_dir = cell_dir(grid_dir, cell.name)
    started = time.perf_counter()
    record: dict[str, Any] = {
        "cell": cell.name, "key": cell_key, "overrides": cell.overrides, "keys": keys,
        "status": FAILED, "metrics": {}, "stages": {}, "error": None,
    }
    reused: set[str] = set()
    try:
        reused = _prepare(cell, record, grid_dir, is_main)
        metrics = _train_and_evaluate(cell, run_dir)
        record.update(status=OK, metrics=metrics)
    except Interrupted as exc:  # its checkpoint is saved: the next run of the cell resumes
        record.update(status=STOPPED, error=exc.message,
                      stopped={"signal": exc.signal_name, "stage": exc.stage, "step": exc.step})
    except LlavaKitError as exc:
        record["error"] = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
    except Exception as exc:  # noqa: BLE001 - one cell's crash must not stop the grid
        record["error"] = f"{type(exc).__name__}: {exc}"
        log.error("cell %s failed:\n%s", cell.name, traceback.format_exc())
    record["stages"] = _stage_outcomes(cell, run_dir, reused)
    record["seconds"] = time.perf_counter() - started
    if is_main:
        write_record(grid_dir, record)
    return record


def write_record(grid_dir: Path, record: dict[str, Any]) -> None:
    run_dir = cell_dir(grid_dir, record["cell"])
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CELL_FILE, json.dumps(record, indent=2) + "\n")


def publish_stages(grid_dir: Path, cell: str, keys: dict[str, str]) -> list[str]:
    """Copy the cell's newly finished stages into the store; the names of those copied."""
    store = StageStore(grid_dir / STORE_DIR)
    run_dir = cell_dir(grid_dir, cell)
    return [stage for stage, key in keys.items()
            if RunDir(run_dir).stage(stage).is_reusable()
            and store.publish(key, run_dir, stage, cell)]


def _prepare(cell: Cell, record: dict[str, Any], grid_dir: Path, is_main: bool) -> set[str]:
    """On rank 0, the cell's run directory holding the stored stages (an interrupted earlier
    run kept), marked ``running``; every rank gets the names of the stored stages put in.

    Resuming is how a run skips finished stages: the stored ones are put in place first,
    under the recipe a resume checks against. A failure here reaches every rank, so none
    waits for a rank 0 that has given up.
    """
    outcome: set[str] | str = set()
    if is_main:
        try:
            outcome = _materialise(cell, record, grid_dir)
            write_record(grid_dir, {**record, "status": RUNNING,
                                    "stages": {stage: "reused" for stage in sorted(outcome)}})
        except Exception as exc:  # noqa: BLE001 - passed on to every rank below
            outcome = exc.message if isinstance(exc, LlavaKitError) else f"{type(exc).__name__}: {exc}"
    outcome = broadcast_object(outcome)
    if isinstance(outcome, str):
        raise LlavaKitError(f"preparing cell {cell.name}: {outcome}")
    return outcome


def _materialise(cell: Cell, record: dict[str, Any], grid_dir: Path) -> set[str]:
    from llava_kit.recipes import recipe_to_yaml

    run_dir = cell_dir(grid_dir, cell.name)
    store = StageStore(grid_dir / STORE_DIR)
    interrupted = _interrupted_run(grid_dir, record)
    reused = set()
    if interrupted is not None:
        log.info("cell %s: resuming its interrupted run", cell.name)
        reused = {stage for stage, how in interrupted["stages"].items() if how == "reused"}
    else:
        if run_dir.exists():  # an earlier, different or failed, run of this cell
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        write_resolved_recipe(run_dir, recipe_to_yaml(cell.recipe))
    for stage, key in record["keys"].items():
        # A stage the kept run has started is its own to finish (its metrics are there).
        if not RunDir(run_dir).stage(stage).path.exists() and store.take(key):
            store.materialise(key, run_dir, stage)
            reused.add(stage)
    return reused


def _interrupted_run(grid_dir: Path, record: dict[str, Any]) -> dict[str, Any] | None:
    """The record of the cell's earlier run when it ran these very keys and was stopped or
    died (its folder then holds what it finished and its checkpoints)."""
    previous = read_cell_record(grid_dir, record["cell"])
    if (previous and previous.get("status") in (RUNNING, STOPPED) and isinstance(
            previous.get("stages"), dict) and previous.get("key") == record["key"]
            and previous.get("keys") == record["keys"]):
        return previous
    return None


def _train_and_evaluate(cell: Cell, run_dir: Path) -> dict[str, dict[str, float]]:
    """Train the stages not put in place from the store, evaluate (rank 0's metrics)."""
    from llava_kit.demo.prepare import ensure_demo_data
    from llava_kit.pipeline import run_recipe
    from llava_kit.recipes import recipe_to_yaml

    ensure_demo_data(cell.recipe)
    recipe_yaml = recipe_to_yaml(cell.recipe)
    return run_recipe(cell.recipe, recipe_yaml=recipe_yaml, run_dir=run_dir, resume=True,
                      tracker_group=cell.grid).metrics


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


def run_named_cell(grid_file: Path, grid_dir: Path, name: str, *, publish: bool = False) -> dict[str, Any]:
    """Run the grid file's cell ``name``; with ``publish`` (a job no executor waits for),
    rank 0 also puts its newly finished stages into the store."""
    from llava_kit.grid.keys import cell_key, stage_keys
    from llava_kit.grid.spec import load_grid

    cell = load_grid(grid_file).select([name])[0]
    record = run_cell(cell, stage_keys(cell.recipe), cell_key(cell.recipe), grid_dir)
    if publish and init_distributed().is_main:
        record["published"] = publish_stages(grid_dir, name, record["keys"])
        write_record(grid_dir, record)
    return record


def main(argv: list[str]) -> int:
    """Subprocess entry: GRID_FILE GRID_DIR CELL."""
    from llava_kit.train.distributed import shutdown_distributed

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    grid_file, grid_dir, name = argv
    record = run_named_cell(Path(grid_file), Path(grid_dir), name)
    if record["status"] != OK:
        return 1  # the launcher ends the other ranks
    shutdown_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
