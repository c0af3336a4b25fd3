"""The test cluster itself: jobs of several tasks run, and final states stay readable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slurm


def _submit(cluster: Any, logs: Path, *args: str) -> str:
    out = cluster.command("sbatch", "--parsable", f"--output={logs}/%j.out", *args)
    return out.strip().split(";")[0]


def test_a_two_task_job_runs_and_its_state_stays_readable(
    slurm_cluster: Any, tmp_path: Path
) -> None:
    job = _submit(slurm_cluster, tmp_path, "--ntasks=2",
                  "--wrap=srun bash -c 'echo rank $SLURM_PROCID of $SLURM_NTASKS'")
    assert slurm_cluster.wait(job) == "COMPLETED"
    lines = sorted((tmp_path / f"{job}.out").read_text().split("\n"))
    assert [line for line in lines if line] == ["rank 0 of 2", "rank 1 of 2"]
    assert not list(Path.cwd().glob(f"slurm-{job}.out"))  # the log went where it was sent


def test_failed_and_cancelled_jobs_report_their_states(slurm_cluster: Any, tmp_path: Path) -> None:
    failed = _submit(slurm_cluster, tmp_path, "--wrap=exit 3")
    assert slurm_cluster.wait(failed) == "FAILED"
    sleeping = _submit(slurm_cluster, tmp_path, "--wrap=sleep 300")
    slurm_cluster.command("scancel", sleeping)
    assert slurm_cluster.wait(sleeping) == "CANCELLED"
