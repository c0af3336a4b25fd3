"""``llava-kit run``: train a recipe's stages and evaluate, on one process or many."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console


def run(
    recipe: Path = typer.Argument(..., help="Recipe YAML file."),
    overrides: list[str] = typer.Option([], "--set", help="Override a field: a.b.c=value."),
    output_dir: Optional[Path] = typer.Option(
        None, "--output-dir", help="Run directory (default runs/<recipe name>/<timestamp>)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue an interrupted run (the newest one if no --output-dir)."
    ),
    nproc: int = typer.Option(1, "--nproc", help="Processes (GPUs) on this node."),
    hostfile: Optional[Path] = typer.Option(None, "--hostfile", help="DeepSpeed hostfile for several nodes."),
    master_port: Optional[int] = typer.Option(None, "--master-port", help="Rendezvous port."),
    no_eval: bool = typer.Option(False, "--no-eval", help="Train only; skip the recipe's evaluations."),
    executor: str = typer.Option(
        "local", "--executor", help="local (this machine) or slurm (one job, --nproc ranks per node)."
    ),
    slurm: Optional[str] = typer.Option(
        None, "--slurm", help="Job settings: partition=...,time=...,gpus_per_node=8,nodes=1,"
        "account=...,warning=SECONDS"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="SLURM: print the job; submit nothing."),
) -> None:
    """Train the recipe's stages, evaluate, and write the run directory."""
    from llava_kit.recipes import load_recipe, recipe_to_yaml
    from llava_kit.demo.prepare import ensure_demo_data
    from llava_kit.train.launch import launch_command, run_launcher
    from llava_kit.pipeline import run_recipe
    from llava_kit.train.run_dir import RunDir

    from llava_kit.errors import LlavaKitError

    if executor not in ("local", "slurm"):
        raise LlavaKitError(f"--executor must be local or slurm, got {executor!r}")
    if executor == "local" and (slurm or dry_run):
        raise LlavaKitError("--slurm and --dry-run are for --executor slurm")
    if executor == "slurm" and hostfile is not None:
        raise LlavaKitError("--hostfile is for runs started here; under SLURM ask for nodes "
                            "with --slurm nodes=N")
    launched = "WORLD_SIZE" in os.environ
    if executor == "local" and (nproc > 1 or hostfile is not None) and not launched:
        argv = ["run", *sys.argv[sys.argv.index("run") + 1:]] if "run" in sys.argv else ["run", str(recipe)]
        raise typer.Exit(run_launcher(launch_command(argv, nproc, hostfile, master_port)))

    loaded = load_recipe(recipe, overrides)
    ensure_demo_data(loaded)
    run_dir = output_dir or loaded.runtime.output_dir
    if run_dir is None:
        run_dir = (RunDir.latest(loaded.name) if resume else RunDir.default(loaded.name)).root
    if executor == "slurm":
        from llava_kit.grid.slurm_recipe import submit_recipe

        typer.echo("\n".join(submit_recipe(
            loaded, recipe_to_yaml(loaded), run_dir, nproc=nproc, slurm=slurm, resume=resume,
            evaluate=not no_eval, dry_run=dry_run)))
        return
    finished = run_recipe(
        loaded, recipe_yaml=recipe_to_yaml(loaded), run_dir=run_dir, resume=resume,
        evaluate=not no_eval,
    ).run_dir
    if not launched or os.environ.get("RANK", "0") == "0":
        Console().print(f"[green]run finished:[/green] {finished} (report: {RunDir(finished).report})")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
