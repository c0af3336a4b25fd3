"""Grid cells as SLURM jobs through submitit: submit, status, cancel.

The job ids live in ``<grid dir>/slurm_jobs.json``. States come from ``squeue
--states=all`` (which also lists jobs that ended recently), so no accounting database
(sacct) is needed; a job SLURM no longer lists counts as ended, and the cell's
``cell.json`` says how.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llava_kit.atomic_files import atomic_write_text
from llava_kit.errors import LlavaKitError
from llava_kit.grid.executor import LOGS_DIR
from llava_kit.grid.plan import CellPlan, read_cell_record
from llava_kit.grid.resources import Resources
from llava_kit.grid.slurm_commands import slurm_command
from llava_kit.grid.slurm_jobs import cell_jobs
from llava_kit.grid.slurm_options import SlurmOptions, job_resources

JOBS_FILE = "slurm_jobs.json"
ENDED = "ENDED"  # no longer listed by SLURM
# States in which a job will still run (or is running): not submitted again.
ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD",
          "REQUEUE_FED", "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT")


class SlurmBackend:
    def __init__(self, grid_file: Path, grid_dir: Path, resources: Resources,
                 options: SlurmOptions) -> None:
        self.grid_file = grid_file
        self.grid_dir = grid_dir
        self.resources = resources
        self.options = options

    @property
    def jobs_file(self) -> Path:
        return self.grid_dir / JOBS_FILE

    def job_ids(self) -> dict[str, str]:
        """cell -> the id of its latest job."""
        if not self.jobs_file.is_file():
            return {}
        return dict(json.loads(self.jobs_file.read_text()))

    def state(self, job_id: str) -> str:
        result = slurm_command("squeue", "--states=all", "-h", "-j", job_id, "-o", "%T", check=False)
        return result.stdout.strip().split("\n")[0] or ENDED

    def submit(self, plans: list[CellPlan]) -> dict[str, str]:
        """Submit the cells that are neither up to date nor queued/running; cell -> job id."""
        ids = self.job_ids()
        live = {cell: job for cell, job in ids.items() if self.state(job) in ACTIVE}
        submitted: dict[str, str] = {}
        for job in cell_jobs(plans):
            if job.cell in live:
                continue
            after = [live.get(cell) or submitted[cell] for cell in job.after
                     if cell in live or cell in submitted]
            submitted[job.cell] = submit_job(
                self._entry(job.cell), self.grid_dir / LOGS_DIR / "slurm",
                f"{self.grid_dir.name}-{job.cell}", self.resources, self.options,
                after=after, what=f"the job of cell {job.cell}")
            ids[job.cell] = submitted[job.cell]
            atomic_write_text(self.jobs_file, json.dumps(ids, indent=2) + "\n")
        return submitted

    def status(self, plans: list[CellPlan]) -> list[tuple[str, str, str, str]]:
        """(cell, job id, SLURM state, the cell record's status) per cell."""
        ids = self.job_ids()
        rows = []
        for plan in plans:
            job = ids.get(plan.name)
            record = read_cell_record(self.grid_dir, plan.name)
            outcome = "up to date" if plan.up_to_date else (record or {}).get("status", "not run")
            rows.append((plan.name, job or "-", self.state(job) if job else "-", outcome))
        return rows

    def cancel(self) -> list[str]:
        """Cancel the grid's queued and running jobs; the cells cancelled."""
        live = {cell: job for cell, job in self.job_ids().items() if self.state(job) in ACTIVE}
        if live:
            slurm_command("scancel", *live.values())
        return list(live)

    def _entry(self, cell: str) -> object:
        from llava_kit.grid.slurm_entry import SlurmCell

        return SlurmCell(str(self.grid_file.resolve()), str(self.grid_dir.resolve()), cell)


def submit_job(entry: object, logs: Path, name: str, resources: Resources,
               options: SlurmOptions, *, after: list[str], what: str) -> str:
    """Submit ``entry`` (called in every task) as one job, after the jobs ``after``; its id.
    The logs go to ``logs/<job id>/``."""
    submitit = _import_submitit()
    nodes, tasks, gpus = job_resources(resources, options)
    parameters: dict[str, object] = {
        "job_name": name, "nodes": nodes, "ntasks_per_node": tasks, "time": options.minutes,
        "stderr_to_stdout": True, "signal_delay_s": options.warning_seconds,
    }
    optional = {"gpus_per_node": gpus or None, "partition": options.partition,
                "account": options.account, "qos": options.qos,
                "cpus_per_task": options.cpus_per_task, "mem": options.mem,
                "dependency": f"afterok:{':'.join(after)}" if after else None}
    parameters.update({key: value for key, value in optional.items() if value is not None})
    executor = submitit.SlurmExecutor(folder=logs / "%j")
    executor.update_parameters(**parameters)
    try:
        return str(executor.submit(entry).job_id)
    except submitit.core.utils.FailedJobError as exc:
        lines = [line for line in str(exc).splitlines() if "error" in line.lower()] \
            or str(exc).splitlines()[-1:]
        raise LlavaKitError(
            f"SLURM refused {what} ({nodes} node(s) x {tasks} task(s), {gpus} GPU(s) per "
            f"node): {lines[-1].strip() if lines else 'no reason given'}",
            hint="ask for what the partition's nodes have (sinfo -o '%P %D %c %G'): lower "
            "--nproc or gpus_per_node, or pick another partition",
        ) from None


def _import_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise LlavaKitError("--executor slurm needs the submitit package",
                            hint='pip install "llava-kit[slurm]"') from None
    return submitit
