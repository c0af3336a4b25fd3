"""``llava-kit grid --executor slurm``: the lines each action prints (plan, submit, status,
cancel), so the command stays a thin layer."""

from __future__ import annotations

from pathlib import Path

from llava_kit.grid.plan import CellPlan
from llava_kit.grid.resources import Resources
from llava_kit.grid.slurm_backend import JOBS_FILE, SlurmBackend
from llava_kit.grid.slurm_jobs import cell_jobs, describe_jobs
from llava_kit.grid.slurm_options import parse_slurm
from llava_kit.train.report import render_table


def slurm_action(
    grid_file: Path, grid_dir: Path, plans: list[CellPlan], resources: Resources,
    slurm: str | None, *, dry_run: bool, status: bool, cancel: bool,
) -> list[str]:
    options = parse_slurm(slurm)
    backend = SlurmBackend(grid_file, grid_dir, resources, options)
    if status:
        rows = [list(row) for row in backend.status(plans)]
        return [render_table(["cell", "job", "SLURM state", "cell record"], rows)]
    if cancel:
        cancelled = backend.cancel()
        return [f"cancelled the jobs of {', '.join(cancelled)}" if cancelled
                else "no queued or running jobs"]
    lines = describe_jobs(cell_jobs(plans), resources, options)
    if dry_run:
        return lines
    submitted = backend.submit(plans)
    lines += [f"submitted cell {cell}: job {job}" for cell, job in submitted.items()]
    if not submitted:
        lines.append("nothing submitted: every cell is up to date, queued or running")
    lines.append(f"job ids in {grid_dir / JOBS_FILE}; follow with --status, logs in "
                 f"{grid_dir / 'logs' / 'slurm'}")
    return lines
