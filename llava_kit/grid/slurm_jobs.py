"""Which SLURM jobs a grid needs: one per cell that is not up to date, each after the jobs
that train the stages it reuses, so a shared stage trains once. Offline: for ``--dry-run``."""

from __future__ import annotations

from dataclasses import dataclass, field

from llava_kit.grid.plan import TRAIN, CellPlan
from llava_kit.grid.resources import Resources
from llava_kit.grid.slurm_options import SlurmOptions, job_resources


@dataclass
class CellJob:
    cell: str
    after: list[str] = field(default_factory=list)  # cells whose jobs must succeed first


def cell_jobs(plans: list[CellPlan]) -> list[CellJob]:
    """Of several cells training one stage key, the first trains it; the others wait for it."""
    trained_by: dict[str, str] = {}
    jobs = []
    for plan in plans:
        if plan.up_to_date:
            continue
        job = CellJob(plan.name)
        for stage in plan.stages:
            if stage.action != TRAIN or stage.key is None:
                continue
            owner = trained_by.setdefault(stage.key, plan.name)
            if owner != plan.name and owner not in job.after:
                job.after.append(owner)
        jobs.append(job)
    return jobs


def sbatch_options(resources: Resources, options: SlurmOptions) -> list[str]:
    """The sbatch options of every cell's job (without its name and dependency)."""
    nodes, tasks, gpus = job_resources(resources, options)
    lines = [f"--nodes={nodes}", f"--ntasks-per-node={tasks}", f"--time={options.minutes}",
             f"--signal=USR2@{options.warning_seconds}"]
    if gpus:
        lines.append(f"--gpus-per-node={gpus}")
    for flag, value in (("partition", options.partition), ("account", options.account),
                        ("qos", options.qos), ("cpus-per-task", options.cpus_per_task),
                        ("mem", options.mem)):
        if value is not None:
            lines.append(f"--{flag}={value}")
    return lines


def describe_jobs(jobs: list[CellJob], resources: Resources, options: SlurmOptions) -> list[str]:
    shared = " ".join(sbatch_options(resources, options))
    lines = [f"SLURM: one job per cell: sbatch {shared}; srun starts "
             f"{resources.nproc_per_node} rank(s) per node"]
    for job in jobs:
        after = f" --dependency=afterok:<{'>:<'.join(job.after)}>" if job.after else ""
        lines.append(f"  job {job.cell}{after}")
    if not jobs:
        lines.append("  no jobs: every cell is up to date")
    return lines
