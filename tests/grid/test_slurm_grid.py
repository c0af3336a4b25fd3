"""Grid cells as SLURM jobs on the test cluster: ranks from srun, shared stages trained once,
cancelled cells resubmitted, refusals at submit time."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import pytest
from safetensors.torch import load_file

from llava_kit.errors import LlavaKitError
from llava_kit.grid import GridExecutor, load_grid, plan_grid
from llava_kit.grid.plan import cell_dir, read_cell_record
from llava_kit.grid.resources import Resources
from llava_kit.grid.slurm_backend import ACTIVE, SlurmBackend
from llava_kit.grid.slurm_options import parse_slurm
from llava_kit.grid.store import StageStore

pytestmark = [pytest.mark.slurm, pytest.mark.distributed]
VARIANTS = {"lr2": {"stages.finetune.optimizer.lr": 0.02}}  # shares stage 1 with baseline
TWO_TASKS = {"nproc_per_node": 2, "gpus_per_process": 0}


@pytest.fixture()
def on_cluster(slurm_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    return slurm_cluster


def _backend(grid_file: Path, grid_dir: Path) -> tuple[SlurmBackend, list]:
    grid = load_grid(grid_file)
    backend = SlurmBackend(grid_file, grid_dir, grid.resources, parse_slurm("time=20"))
    return backend, plan_grid(grid, grid_dir, grid.cells)


def _final(grid_dir: Path, cell: str) -> dict:
    return load_file(cell_dir(grid_dir, cell) / "checkpoints/finetune/final/model.safetensors")


def test_a_job_larger_than_the_node_is_refused_at_submit_time(
    on_cluster: Any, write_grid: Callable[..., Path], tmp_path: Path
) -> None:
    grid_file = write_grid(variants=VARIANTS, common={"runtime.deepspeed": "zero2"},
                           resources={"nproc_per_node": 64, "gpus_per_process": 0})
    backend, plans = _backend(grid_file, tmp_path / "out")
    with pytest.raises(LlavaKitError, match="SLURM refused the job of cell baseline "
                                            r"\(1 node\(s\) x 64 task\(s\)") as refused:
        backend.submit(plans)
    assert "sinfo" in (refused.value.hint or "")
    assert backend.job_ids() == {}


def test_cells_run_as_two_task_jobs_and_a_cancelled_cell_is_resubmitted(
    on_cluster: Any, write_grid: Callable[..., Path], tmp_path: Path
) -> None:
    grid_file = write_grid(variants=VARIANTS, common={"runtime.deepspeed": "zero2"},
                           resources=TWO_TASKS)
    grid_dir = tmp_path / "out"
    backend, plans = _backend(grid_file, grid_dir)
    first = backend.submit(plans)
    assert list(first) == ["baseline", "lr2"]
    assert backend.submit(plans) == {}  # queued or running: not submitted twice
    assert on_cluster.wait(first["baseline"]) == "COMPLETED"

    # lr2 waited for baseline (afterok); kill it once it has started, then run the grid again.
    deadline = time.monotonic() + 120
    while not (cell_dir(grid_dir, "lr2") / "recipe.resolved.yaml").is_file():
        assert time.monotonic() < deadline and backend.state(first["lr2"]) in ACTIVE
        time.sleep(0.5)
    assert backend.cancel() == ["lr2"]
    assert on_cluster.wait(first["lr2"]) == "CANCELLED"
    rows = {row[0]: row for row in backend.status(plans)}
    assert rows["lr2"][1:3] == (first["lr2"], "CANCELLED")
    _, plans = _backend(grid_file, grid_dir)
    again = backend.submit(plans)
    assert list(again) == ["lr2"]  # baseline is finished
    assert on_cluster.wait(again["lr2"]) == "COMPLETED"

    records = {cell: read_cell_record(grid_dir, cell) for cell in ("baseline", "lr2")}
    assert all(r["status"] == "ok" for r in records.values())
    # Stage 1 trained once, by baseline's job, which published it for lr2.
    assert records["lr2"]["stages"] == {"pretrain": "reused", "finetune": "trained"}
    assert StageStore(grid_dir / "store").origin(records["baseline"]["keys"]["pretrain"])[
        "cell"] == "baseline"
    # srun started two ranks (task 1 logs to its own file).
    log = (grid_dir / "logs" / "slurm" / again["lr2"] / f"{again['lr2']}_1_log.out").read_text()
    assert "cell lr2: rank 1 of 2" in log

    # The resubmitted two-rank cell reaches the weights of an uninterrupted one-process run.
    reference_file = write_grid("reference.yaml", variants=VARIANTS)
    reference = load_grid(reference_file)
    GridExecutor(reference_file, tmp_path / "ref", resources=Resources()).run(
        plan_grid(reference, tmp_path / "ref", reference.cells))
    want, got = _final(tmp_path / "ref", "lr2"), _final(grid_dir, "lr2")
    assert want.keys() == got.keys()
    for name in want:
        assert (want[name] - got[name]).abs().max() <= 1e-4 * (1 + want[name].abs().max()), name
