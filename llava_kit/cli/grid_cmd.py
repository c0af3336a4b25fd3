"""``llava-kit grid``: run an ablation grid, reusing every stage trained before."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

DEFAULT_BASE = Path("runs") / "grids"


def grid(
    grid_file: Path = typer.Argument(..., help="Grid YAML (extends a recipe; variants/axes)."),
    output_dir: Optional[Path] = typer.Option(
        None, "--output-dir", help="Grid directory (default runs/grids/<grid name>)."
    ),
    only: list[str] = typer.Option([], "--only", help="Run only this cell (repeatable)."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would train or be reused; load no weights."
    ),
    parallel: int = typer.Option(
        1, "--parallel", help="Cells at once, as subprocesses splitting the GPUs evenly."
    ),
    nproc: Optional[int] = typer.Option(
        None, "--nproc", help="Processes (GPUs) per cell, under torchrun (default: the grid "
        "file's resources.nproc_per_node, else 1)."
    ),
    executor: str = typer.Option(
        "local", "--executor", help="local (this machine) or slurm (one job per cell)."
    ),
    slurm: Optional[str] = typer.Option(
        None, "--slurm", help="Job settings: partition=...,time=...,gpus_per_node=8,nodes=1,"
        "account=..."
    ),
    status: bool = typer.Option(False, "--status", help="SLURM: each cell's job and state."),
    cancel: bool = typer.Option(False, "--cancel", help="SLURM: cancel the grid's jobs."),
) -> None:
    """Run every cell of an ablation grid and write grid.md / grid.json with the deltas."""
    from llava_kit.grid import GridExecutor, describe_plan, load_grid, plan_grid
    from llava_kit.errors import LlavaKitError
    from llava_kit.grid.resources import check_multi_process
    from llava_kit.grid.report import summary_rows, write_grid_report
    from llava_kit.train.report import print_table

    loaded = load_grid(grid_file)
    grid_dir = output_dir or DEFAULT_BASE / loaded.name
    resources = loaded.resources.with_nproc(nproc)
    plans = plan_grid(loaded, grid_dir, loaded.select(list(only)))
    check_multi_process(resources, [(p.name, p.cell.recipe.runtime.deepspeed) for p in plans])
    typer.echo("\n".join(describe_plan(plans)))
    typer.echo(f"each cell: {resources.describe()}")
    if executor not in ("local", "slurm"):
        raise LlavaKitError(f"--executor must be local or slurm, got {executor!r}")
    if executor == "slurm":
        from llava_kit.grid.slurm_run import slurm_action

        typer.echo("\n".join(slurm_action(grid_file, grid_dir, plans, resources, slurm,
                                          dry_run=dry_run, status=status, cancel=cancel)))
        return
    if slurm or status or cancel:
        raise LlavaKitError("--slurm, --status and --cancel are for --executor slurm")
    if dry_run:
        return
    started = time.perf_counter()

    def done(record: dict) -> None:
        status = record["status"] + (f": {record['error']}" if record.get("error") else "")
        typer.echo(f"cell {record['cell']}: {status}")

    records = GridExecutor(grid_file, grid_dir, parallel, on_done=done,
                           resources=resources).run(plans)
    report, _ = write_grid_report(loaded, grid_dir)
    print_table(f"grid {loaded.name}", *summary_rows(loaded, grid_dir))
    typer.echo(
        f"grid finished in {time.perf_counter() - started:.1f}s: {len(records)} cell(s) run, "
        f"report {report}"
    )
    if any(record["status"] != "ok" for record in records):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("grid")(grid)
