"""The SLURM side offline: --slurm options, the jobs a grid needs and their dependencies."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from llava_kit.cli.app import main
from llava_kit.errors import LlavaKitError
from llava_kit.grid import load_grid, plan_grid
from llava_kit.grid.resources import Resources
from llava_kit.grid.slurm_jobs import cell_jobs, sbatch_options
from llava_kit.grid.slurm_options import SlurmOptions, job_resources, parse_slurm

PAPER_GRID = Path(__file__).resolve().parents[2] / "recipes/ablations/paper_scienceqa.yaml"


def test_slurm_options_are_parsed() -> None:
    options = parse_slurm("partition=gpu,time=1-02:30:00,gpus_per_node=8,nodes=2,account=lab,"
                          "warning=300")
    assert options == SlurmOptions(partition="gpu", minutes=1590, account="lab", nodes=2,
                                   gpus_per_node=8, warning_seconds=300)
    assert [parse_slurm(f"time={t}").minutes for t in ("90", "10:30", "24:00:00", "2-00")] == [
        90, 11, 1440, 2880]
    assert parse_slurm(None) == SlurmOptions()


@pytest.mark.parametrize(("text", "message"), [
    ("gpus=8", "--slurm: unknown key 'gpus'; the keys are partition, time"),
    ("partition", "--slurm: 'partition' is not key=value"),
    ("nodes=0", "--slurm nodes=0: must be a whole number"),
    ("time=soon", "--slurm time=soon: not a SLURM time limit"),
    ("time=5,warning=300",
     "--slurm warning=300: the warning must come before the job's time limit"),
])
def test_bad_slurm_options_are_named(text: str, message: str) -> None:
    with pytest.raises(LlavaKitError, match=message.replace("(", r"\(")):
        parse_slurm(text)


def test_a_job_gets_the_cells_ranks_and_at_least_their_gpus() -> None:
    eight = Resources(nproc_per_node=8)
    assert job_resources(eight, SlurmOptions()) == (1, 8, 8)
    assert sbatch_options(eight, parse_slurm("partition=gpu,time=60,account=lab")) == [
        "--nodes=1", "--ntasks-per-node=8", "--time=60", "--signal=USR2@90",
        "--gpus-per-node=8", "--partition=gpu", "--account=lab"]
    assert sbatch_options(Resources(2, 1, 0), SlurmOptions())[-1] == "--signal=USR2@90"  # no GPUs
    with pytest.raises(LlavaKitError, match="gpus_per_node=4 is fewer than the 8 GPUs"):
        job_resources(eight, parse_slurm("gpus_per_node=4"))


def test_cells_wait_for_the_job_that_trains_their_shared_stage(tmp_path: Path) -> None:
    grid = load_grid(PAPER_GRID)
    jobs = cell_jobs(plan_grid(grid, tmp_path, grid.cells))
    assert [(job.cell, job.after) for job in jobs] == [
        ("baseline", []), ("last_layer", []), ("answer_first", ["baseline"]),
        ("no_pretrain", []), ("7b", [])]


def test_paper_grid_slurm_dry_run_prints_jobs_offline(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch/squeue: a dry run needs none
    monkeypatch.setattr(sys, "argv", [
        "llava-kit", "grid", str(PAPER_GRID), "--dry-run", "--executor", "slurm", "--nproc", "8",
        "--slurm", "partition=gpu,time=24:00:00,account=lab", "--output-dir", str(tmp_path / "g")])
    try:
        main()
    except SystemExit as exit_:
        assert exit_.code in (0, None)
    out = capsys.readouterr().out
    assert ("SLURM: one job per cell: sbatch --nodes=1 --ntasks-per-node=8 --time=1440 "
            "--signal=USR2@90 --gpus-per-node=8 --partition=gpu --account=lab; srun starts 8 "
            "rank(s) per node") in out
    assert "  job answer_first --dependency=afterok:<baseline>\n" in out
    assert "  job baseline\n" in out
    assert not (tmp_path / "g").exists()


def test_slurm_options_without_the_slurm_executor_are_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "argv", ["llava-kit", "grid", str(PAPER_GRID), "--status",
                                      "--output-dir", str(tmp_path / "g")])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code not in (0, None)
    captured = capsys.readouterr()
    assert "--slurm, --status and --cancel are for --executor slurm" in captured.out + captured.err
    assert "Traceback" not in captured.out + captured.err
