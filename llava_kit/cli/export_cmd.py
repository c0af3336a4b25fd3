"""``llava-kit export``: a finished run's model in transformers' LLaVA format or llava-kit's own."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.console import Console


class Format(str, Enum):
    hf_llava = "hf-llava"
    llava_kit = "llava-kit"


def export(
    run_dir: Path = typer.Argument(..., help="Run directory written by `llava-kit run`.", show_default=False),
    fmt: Format = typer.Option(
        Format.hf_llava, "--format",
        help="hf-llava: LlavaForConditionalGeneration + AutoProcessor; "
        "llava-kit: any run, loaded with llava_kit.load(DIR).",
    ),
    out: Path = typer.Option(..., "--out", help="New (or empty) folder to write.", show_default=False),
) -> None:
    """Export the trained model of a run (LoRA adapters merged)."""
    from llava_kit.export import export_run

    console = Console()
    notes = export_run(run_dir, fmt.value, out)
    if fmt is Format.hf_llava:
        from llava_kit.export.engines import serving_engine_notes

        notes += serving_engine_notes(out)
    for note in notes:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    console.print(f"[green]exported[/green] ({fmt.value}): {out}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
