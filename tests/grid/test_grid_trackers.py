"""A tiny grid with trackers: each cell is its own tracker run, grouped under the grid (a
TensorBoard run per cell folder, the grid's MLflow experiment), and a cell that takes a
stage from the store still shows that stage's loss curve."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from llava_kit.grid import GridExecutor, load_grid, plan_grid
from llava_kit.grid.plan import cell_dir
from llava_kit.train.run_dir import RunDir

pytestmark = pytest.mark.slow


def test_each_cell_is_its_own_tracker_run_grouped_under_the_grid(
    write_grid: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    grid_file = write_grid(
        common={"eval": {}, "runtime.trackers": ["tensorboard", {"name": "mlflow",
                                                                  "tracking_uri": uri}]},
        variants={"lr2": {"stages.finetune.optimizer.lr": 0.02}},  # reuses stage 1
    )
    grid_dir = tmp_path / "out"
    grid = load_grid(grid_file)
    records = GridExecutor(grid_file, grid_dir).run(plan_grid(grid, grid_dir, grid.cells))
    assert [(r["cell"], r["status"]) for r in records] == [("baseline", "ok"), ("lr2", "ok")]
    assert records[1]["stages"]["pretrain"] == "reused"

    # `tensorboard --logdir <grid>/cells`: one run per cell.
    runs = EventMultiplexer()
    runs.AddRunsFromDirectory(str(grid_dir / "cells"))
    runs.Reload()
    assert sorted(runs.Runs()) == ["baseline/tensorboard", "lr2/tensorboard"]
    curves = {name: {tag: [(e.step, e.value) for e in runs.Scalars(name, tag)]
                     for tag in ("pretrain/loss", "finetune/loss")} for name in runs.Runs()}
    baseline, lr2 = curves["baseline/tensorboard"], curves["lr2/tensorboard"]
    assert lr2["pretrain/loss"] == baseline["pretrain/loss"]  # the stored stage, sent again
    assert [step for step, _ in lr2["finetune/loss"]] == [3, 4]
    assert RunDir(cell_dir(grid_dir, "lr2")).tensorboard.is_dir()

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("g")
    cells = client.search_runs([experiment.experiment_id])
    assert sorted(run.info.run_name for run in cells) == ["tiny-baseline", "tiny-lr2"]
    assert {run.data.tags["llava_kit.grid"] for run in cells} == {"g"}
