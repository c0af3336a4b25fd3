"""Grid cells under the real launcher: each cell a torchrun job of several DeepSpeed ranks."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from safetensors.torch import load_file

from llava_kit.grid import GridExecutor, load_grid, plan_grid
from llava_kit.grid.plan import cell_dir, read_cell_record
from llava_kit.grid.resources import Resources
from llava_kit.train.metrics import read_metrics

VARIANTS = {"lr2": {"stages.finetune.optimizer.lr": 0.02}}  # shares stage 1 with baseline
STAGES = ("pretrain", "finetune")


def _run(grid_file: Path, grid_dir: Path) -> dict[str, dict]:
    grid = load_grid(grid_file)
    plans = plan_grid(grid, grid_dir, grid.cells)
    records = GridExecutor(grid_file, grid_dir, resources=grid.resources).run(plans)
    return {record["cell"]: record for record in records}


def _losses(run_dir: Path) -> list[tuple[str, int, float]]:
    return [(r["stage"], r["step"], r["loss"]) for r in read_metrics(run_dir / "metrics.jsonl")
            if "loss" in r]


@pytest.mark.distributed
def test_two_process_zero2_cells_match_single_process_cells(
    write_grid: Callable[..., Path], tmp_path: Path
) -> None:
    single = _run(write_grid("single.yaml", variants=VARIANTS), tmp_path / "single")
    launched_file = write_grid(
        "launched.yaml", variants=VARIANTS, common={"runtime.deepspeed": "zero2"},
        resources={"nproc_per_node": 2},
    )
    assert load_grid(launched_file).resources == Resources(nproc_per_node=2)
    launched = _run(launched_file, tmp_path / "launched")

    for cell in ("baseline", "lr2"):
        assert launched[cell]["status"] == "ok", launched[cell]["error"]
        assert single[cell]["status"] == "ok", single[cell]["error"]
        log = (tmp_path / "launched" / "logs" / f"{cell}.log").read_text()
        assert f"cell {cell}: rank 1 of 2" in log  # two ranks ran the cell ...
        # ... and rank 0 alone wrote its record (the executor then added what it published).
        assert read_cell_record(tmp_path / "launched", cell)["metrics"]
        assert launched[cell]["stages"] == single[cell]["stages"]
        want, got = _losses(cell_dir(tmp_path / "single", cell)), _losses(
            cell_dir(tmp_path / "launched", cell))
        assert [(s, n) for s, n, _ in got] == [(s, n) for s, n, _ in want] and got
        for (_, _, expected), (_, _, have) in zip(want, got):
            assert have == pytest.approx(expected, rel=1e-4)
        for stage in STAGES:
            final = Path("checkpoints") / stage / "final" / "model.safetensors"
            a = load_file(cell_dir(tmp_path / "single", cell) / final)
            b = load_file(cell_dir(tmp_path / "launched", cell) / final)
            assert a.keys() == b.keys()
            for name in a:
                assert (a[name] - b[name]).abs().max() <= 1e-4 * (1 + a[name].abs().max()), name
    # The shared stage 1 trained once, under the launcher too.
    assert launched["lr2"]["stages"] == {"pretrain": "reused", "finetune": "trained"}
