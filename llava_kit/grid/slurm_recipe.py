"""``llava-kit run RECIPE --executor slurm``: one SLURM job runs the whole recipe, its ranks
started by srun. The run directory is made (with the resolved recipe) at submit time, so
the job, and any requeued or resubmitted start of it, resumes that run."""

from __future__ import annotations

import shutil
from pathlib import Path

from llava_kit.grid.resources import Resources
from llava_kit.grid.slurm_backend import submit_job
from llava_kit.grid.slurm_jobs import sbatch_options
from llava_kit.grid.slurm_options import parse_slurm
from llava_kit.recipes import Recipe
from llava_kit.recipes.changes import check_resume_recipe
from llava_kit.train.run_dir import RunDir, prepare_run_dir, write_resolved_recipe


def submit_recipe(
    recipe: Recipe, recipe_yaml: str, run_dir: Path, *, nproc: int, slurm: str | None,
    resume: bool, evaluate: bool, dry_run: bool,
) -> list[str]:
    """Submit the run (or, with ``dry_run``, describe its job); the lines to print."""
    options = parse_slurm(slurm)
    resources = Resources(nproc_per_node=nproc, nodes=options.nodes or 1,
                          gpus_per_process=0 if recipe.runtime.device == "cpu" else 1)
    lines = [f"SLURM: one job: sbatch {' '.join(sbatch_options(resources, options))}; srun "
             f"starts {nproc} rank(s) per node; run directory {run_dir}"]
    if dry_run:
        return lines
    layout = RunDir(run_dir)
    existed = run_dir.exists()
    prepare_run_dir(run_dir, resume=resume)
    if resume:
        check_resume_recipe(layout.resolved_recipe.read_text(encoding="utf-8"), recipe_yaml,
                            str(layout.resolved_recipe))
    else:
        write_resolved_recipe(run_dir, recipe_yaml)
    try:
        job = submit_job(
            _entry(recipe_yaml, run_dir, evaluate), layout.slurm_logs, recipe.name, resources,
            options, after=[], what=f"the job of run {run_dir}")
    except BaseException:
        if not resume:  # leave no half-made run directory behind a refused job
            _remove_made(run_dir, existed)
        raise
    return lines + [
        f"submitted job {job}; logs in {layout.slurm_logs / job}; follow with squeue -j {job}",
        f"after a cancel, continue with: llava-kit run RECIPE --executor slurm --resume "
        f"--output-dir {run_dir}",
    ]


def _entry(recipe_yaml: str, run_dir: Path, evaluate: bool) -> object:
    from llava_kit.grid.slurm_entry import SlurmRecipe

    return SlurmRecipe(recipe_yaml, str(run_dir.resolve()), evaluate)


def _remove_made(run_dir: Path, existed: bool) -> None:
    """Remove what submitting made: the run directory, or its contents if it existed empty."""
    if not existed:
        shutil.rmtree(run_dir)
        return
    for child in run_dir.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
