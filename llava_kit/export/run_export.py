"""``llava-kit export``: a finished run's model, LoRA merged, in the chosen format."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from llava_kit.errors import LlavaKitError
from llava_kit.export.hf_llava import export_hf_llava
from llava_kit.export.llava_kit_format import export_llava_kit
from llava_kit.loading import open_model
from llava_kit.train.lora import merge_lora

ExportFormat = Literal["hf-llava", "llava-kit"]


def export_run(run_dir: Path, fmt: ExportFormat, out: Path) -> list[str]:
    """Export the run's trained model into ``out`` (a new or empty folder).

    Returns notes for the user about what the format could not carry over.
    """
    if fmt not in get_args(ExportFormat):
        raise ValueError(f"unknown export format {fmt!r}; expected one of {get_args(ExportFormat)}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LlavaKitError(
            f"--out {out} already exists and is not an empty folder",
            hint="choose a new folder; an export never overwrites files",
        )
    opened = open_model(run_dir, device="cpu")  # exports are written from host memory
    model = opened.model
    merge_lora(model)
    if fmt == "hf-llava":
        return export_hf_llava(model, opened.recipe, out)
    export_llava_kit(model, opened.recipe_file.read_text(encoding="utf-8"), out)
    return []
