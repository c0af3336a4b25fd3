"""Running a tiny grid: which stages train, the store, reuse on re-runs, failures, the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest

from llava_kit.grid import GridExecutor, load_grid, plan_grid, write_grid_report
from llava_kit.grid.plan import DISABLED, REUSE, TRAIN, cell_dir
from llava_kit.grid.store import StageStore
from llava_kit.train.metrics import read_metrics

pytestmark = pytest.mark.slow

VARIANTS = {
    "lr2": {"stages.finetune.optimizer.lr": 0.02},  # stage 2 only: shares stage 1
    "broken": {"stages.finetune.data.limit": 1},  # valid recipe, fails at run time
    "no_pretrain": {"stages.pretrain.enabled": False},
}
COMMON = {"stages.finetune.eval_every_epoch": True, "stages.finetune.epochs": 2}


def _run(grid_file: Path, grid_dir: Path, only: list[str] = ()) -> list[dict]:
    grid = load_grid(grid_file)
    plans = plan_grid(grid, grid_dir, grid.select(list(only)))
    records = GridExecutor(grid_file, grid_dir).run(plans)
    write_grid_report(grid, grid_dir)
    return records


def test_grid_trains_shared_stages_once_and_reuses_them(
    write_grid: Callable[..., Path], tmp_path: Path
) -> None:
    grid_file = write_grid(common=COMMON, variants=VARIANTS)
    grid_dir = tmp_path / "out"
    records = {r["cell"]: r for r in _run(grid_file, grid_dir)}
    assert list(records) == ["baseline", "lr2", "broken", "no_pretrain"]

    # Stage 1 trained once (by baseline); lr2 and broken took it from the store.
    assert records["baseline"]["stages"] == {"pretrain": "trained", "finetune": "trained"}
    assert records["lr2"]["stages"] == {"pretrain": "reused", "finetune": "trained"}
    assert records["no_pretrain"]["stages"] == {"pretrain": "disabled", "finetune": "trained"}
    assert records["baseline"]["published"] == ["pretrain", "finetune"]
    assert records["lr2"]["published"] == ["finetune"]
    store = StageStore(grid_dir / "store")
    pretrain_key = records["baseline"]["keys"]["pretrain"]
    assert records["lr2"]["keys"]["pretrain"] == pretrain_key
    assert len(store.keys()) == 4  # 1 stage 1 + 3 finished stage 2s
    assert store.origin(pretrain_key)["cell"] == "baseline"
    # The reusing cell's run holds the stored loss curve of stage 1 and no second run of it.
    lr2_metrics = read_metrics(cell_dir(grid_dir, "lr2") / "metrics.jsonl")
    baseline_metrics = read_metrics(cell_dir(grid_dir, "baseline") / "metrics.jsonl")
    assert [r["loss"] for r in lr2_metrics if r["stage"] == "pretrain"] == [
        r["loss"] for r in baseline_metrics if r["stage"] == "pretrain"]

    # A failing cell is recorded with its error; the cell after it still ran.
    assert records["broken"]["status"] == "failed"
    assert records["broken"]["stages"] == {"pretrain": "reused", "finetune": "not finished"}
    assert "the stage has 1 samples, fewer than one global batch (8)" in records["broken"]["error"]
    assert records["no_pretrain"]["status"] == "ok"

    # eval_every_epoch: one record per epoch; the last equals the final evaluation.
    epochs = [r for r in baseline_metrics if r.get("eval") == "test"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert epochs[-1]["acc"] == records["baseline"]["metrics"]["test"]["acc"]

    # The report: deltas against the baseline, the failure, the plots.
    report = json.loads((grid_dir / "grid.json").read_text())
    cells = {c["cell"]: c for c in report["cells"]}
    base_acc = records["baseline"]["metrics"]["test"]["acc"]
    assert cells["lr2"]["delta"]["test"]["acc"] == pytest.approx(
        records["lr2"]["metrics"]["test"]["acc"] - base_acc)
    text = (grid_dir / "grid.md").read_text()
    assert f"| baseline | - | {base_acc:.2f} | - |" in text
    assert "| broken | stages.finetune.data.limit=1 | failed: " in text
    assert (grid_dir / "grid.png").is_file() and (grid_dir / "grid_curves.png").is_file()

    # Re-running the same grid runs nothing but the failed cell (and it fails again).
    plans = plan_grid(load_grid(grid_file), grid_dir, load_grid(grid_file).cells)
    assert [p.name for p in plans if not p.up_to_date] == ["broken"]
    rerun = _run(grid_file, grid_dir)
    assert [r["cell"] for r in rerun] == ["broken"]
    assert len(store.keys()) == 4

    # A cell whose record is gone is rebuilt from the store alone, with the same result.
    (cell_dir(grid_dir, "lr2") / "cell.json").unlink()
    again = _run(grid_file, grid_dir, only=["lr2"])
    assert again[0]["stages"] == {"pretrain": "reused", "finetune": "reused"}
    assert again[0]["published"] == []
    assert again[0]["metrics"] == records["lr2"]["metrics"]

    # A stored stage damaged on disk is verified before reuse: moved aside with a warning,
    # trained again (to the same result) and published afresh; no manual clean-up.
    finetune_key = records["lr2"]["keys"]["finetune"]
    stored = store.entry(finetune_key) / "final" / "model.safetensors"
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    (cell_dir(grid_dir, "lr2") / "cell.json").unlink()
    healed = _run(grid_file, grid_dir, only=["lr2"])
    assert healed[0]["stages"] == {"pretrain": "reused", "finetune": "trained"}
    assert healed[0]["published"] == ["finetune"]
    assert healed[0]["metrics"] == records["lr2"]["metrics"]
    assert [p.name.split("-")[1] for p in store.root.glob(".damaged-*")] == [finetune_key]
    assert len(store.keys()) == 4

    # Adding a variant to the finished grid runs only that variant's new stage.
    bigger = write_grid(
        "grid2.yaml", common=COMMON,
        variants={**VARIANTS, "ep1": {"stages.finetune.epochs": 1}},
    )
    grid = load_grid(bigger)
    actions = {p.name: [s.action for s in p.stages] for p in plan_grid(grid, grid_dir, grid.cells)}
    assert actions["ep1"] == [REUSE, TRAIN]
    assert actions["no_pretrain"] == [DISABLED, REUSE]
    added = _run(bigger, grid_dir)
    assert [r["cell"] for r in added] == ["broken", "ep1"]
    assert added[1]["stages"] == {"pretrain": "reused", "finetune": "trained"}
    assert len(store.keys()) == 5


def test_parallel_cells_run_as_subprocesses_and_wait_for_shared_stages(
    write_grid: Callable[..., Path], tmp_path: Path
) -> None:
    grid_file = write_grid(variants={"lr2": {"stages.finetune.optimizer.lr": 0.02}})
    grid_dir = tmp_path / "out"
    grid = load_grid(grid_file)
    records = GridExecutor(grid_file, grid_dir, parallel=2).run(
        plan_grid(grid, grid_dir, grid.cells))
    by_cell = {r["cell"]: r for r in records}
    assert {r["status"] for r in records} == {"ok"}
    # lr2 needs baseline's stage 1, so it started after baseline published it.
    assert by_cell["lr2"]["stages"] == {"pretrain": "reused", "finetune": "trained"}
    assert len(StageStore(grid_dir / "store").keys()) == 3
    assert (grid_dir / "logs" / "lr2.log").is_file()
