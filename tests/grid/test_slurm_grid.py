"""Grid cells as SLURM jobs on the test cluster: ranks from srun, shared stages trained once,
a cell requeued on the time-limit warning and a cancelled one resubmitted (both resume),
refusals at submit time."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from safetensors.torch import load_file

from llava_kit.cli.app import main
from llava_kit.errors import LlavaKitError
from llava_kit.grid import GridExecutor, load_grid, plan_grid
from llava_kit.grid.plan import cell_dir, read_cell_record
from llava_kit.grid.resources import Resources
from llava_kit.grid.slurm_backend import ACTIVE, SlurmBackend
from llava_kit.grid.slurm_options import parse_slurm
from llava_kit.grid.store import StageStore
from llava_kit.train.run_dir import RunDir

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


def _wait_for_line(path: Path, line: str, job: str) -> None:
    deadline = time.monotonic() + 120
    while not (path.is_file() and line in path.read_text(errors="replace")):
        assert time.monotonic() < deadline and _state(job) in ACTIVE, (job, line)
        time.sleep(0.1)


def _state(job: str) -> str:
    return SlurmBackend(Path(), Path(), Resources(), parse_slurm(None)).state(job)


def test_cells_run_as_two_task_jobs_requeued_or_cancelled_cells_resume(
    on_cluster: Any, write_grid: Callable[..., Path], tmp_path: Path
) -> None:
    grid_file = write_grid(variants=VARIANTS, common={"runtime.deepspeed": "zero2"},
                           resources=TWO_TASKS)
    grid_dir = tmp_path / "out"
    backend, plans = _backend(grid_file, grid_dir)
    first = backend.submit(plans)
    assert list(first) == ["baseline", "lr2"]
    assert backend.submit(plans) == {}  # queued or running: not submitted twice

    # SLURM's time-limit warning (what --signal=USR2@90 sends) to every task of baseline's
    # job once it runs the cell: the ranks checkpoint together, rank 0 requeues the job.
    job = first["baseline"]
    rank0_log = grid_dir / "logs" / "slurm" / job / f"{job}_0_log.out"
    _wait_for_line(rank0_log, "cell baseline: rank 0 of 2", job)
    on_cluster.command("scancel", "--signal=USR2", job)
    assert on_cluster.wait(job) == "COMPLETED"
    log = rank0_log.read_text()
    assert "stopped by SIGUSR2 in stage pretrain after step 1" in log
    assert f"requeueing job {job}" in log
    assert "cell baseline: resuming its interrupted run" in log

    # lr2 waited for baseline (afterok); cancel it once it runs the cell: scancel's SIGTERM
    # stops it after its next step, then running the grid again resumes it.
    job = first["lr2"]
    _wait_for_line(grid_dir / "logs" / "slurm" / job / f"{job}_0_log.out",
                   "cell lr2: rank 0 of 2", job)
    assert backend.cancel() == ["lr2"]
    assert on_cluster.wait(first["lr2"]) == "CANCELLED"
    assert read_cell_record(grid_dir, "lr2")["status"] in ("stopped", "running")
    rows = {row[0]: row for row in backend.status(plans)}
    assert rows["lr2"][1:3] == (first["lr2"], "CANCELLED")
    _, plans = _backend(grid_file, grid_dir)
    again = backend.submit(plans)
    assert list(again) == ["lr2"]  # baseline is finished
    assert on_cluster.wait(again["lr2"]) == "COMPLETED"

    records = {cell: read_cell_record(grid_dir, cell) for cell in ("baseline", "lr2")}
    assert records["baseline"]["stages"] == {"pretrain": "trained", "finetune": "trained"}
    assert all(r["status"] == "ok" for r in records.values())
    # Stage 1 trained once, by baseline's job, which published it for lr2.
    assert records["lr2"]["stages"] == {"pretrain": "reused", "finetune": "trained"}
    assert StageStore(grid_dir / "store").origin(records["baseline"]["keys"]["pretrain"])[
        "cell"] == "baseline"
    # srun started two ranks (task 1 logs to its own file).
    log = (grid_dir / "logs" / "slurm" / again["lr2"] / f"{again['lr2']}_1_log.out").read_text()
    assert "cell lr2: rank 1 of 2" in log

    # The requeued and the resubmitted two-rank cells reach the weights of an uninterrupted
    # one-process run.
    reference_file = write_grid("reference.yaml", variants=VARIANTS)
    reference = load_grid(reference_file)
    GridExecutor(reference_file, tmp_path / "ref", resources=Resources()).run(
        plan_grid(reference, tmp_path / "ref", reference.cells))
    for cell in ("baseline", "lr2"):
        want, got = _final(tmp_path / "ref", cell), _final(grid_dir, cell)
        assert want.keys() == got.keys()
        for name in want:
            assert (want[name] - got[name]).abs().max() <= 1e-4 * (1 + want[name].abs().max()), \
                (cell, name)


def test_a_two_node_run_is_one_job_that_resumes_after_the_warning(
    on_cluster: Any, write_grid: Callable[..., Path], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    write_grid()  # base.yaml
    base, run_dir = str(tmp_path / "base.yaml"), tmp_path / "run"
    _cli(monkeypatch, capsys, "run", base, "--set", "runtime.deepspeed=zero2", "--executor",
         "slurm", "--slurm", "time=20,nodes=2", "--output-dir", str(run_dir))
    job = re.search(r"submitted job (\d+)", capsys.readouterr().out).group(1)
    assert RunDir(run_dir).resolved_recipe.is_file()  # made at submit time

    # One rank on each node; the warning once both run: they save together, rank 0 requeues.
    logs = RunDir(run_dir).slurm_logs / job
    _wait_for_line(logs / f"{job}_0_log.out", f"SLURM job {job}: task 0 of 2", job)
    _wait_for_line(logs / f"{job}_1_log.out", f"SLURM job {job}: task 1 of 2", job)
    on_cluster.command("scancel", "--signal=USR2", job)
    assert on_cluster.wait(job) == "COMPLETED"
    text = (logs / f"{job}_0_log.out").read_text()
    assert f"requeueing job {job}" in text and "stopped by SIGUSR2" in text
    assert "NodeList=llavakit-n[1-2]" in on_cluster.command("scontrol", "show", "job", job)
    assert "ScienceQA" in RunDir(run_dir).report.read_text()

    # The same weights as one uninterrupted process.
    _cli(monkeypatch, capsys, "run", base, "--no-eval", "--output-dir", str(tmp_path / "ref"))
    stage = "checkpoints/finetune/final/model.safetensors"
    want, got = load_file(tmp_path / "ref" / stage), load_file(run_dir / stage)
    assert want.keys() == got.keys()
    for name in want:
        assert (want[name] - got[name]).abs().max() <= 1e-4 * (1 + want[name].abs().max()), name


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> None:
    monkeypatch.setattr(sys, "argv", ["llava-kit", *argv])
    try:
        main()
    except SystemExit as exit_:
        assert exit_.code in (0, None), capsys.readouterr().out
