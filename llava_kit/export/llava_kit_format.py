"""Export in llava-kit's own format: any run, whatever its components (see llava_kit.load)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors.torch import save_model

from llava_kit.loading import (
    EXPORT_FORMAT_VERSION, EXPORT_MANIFEST, EXPORT_RECIPE, EXPORT_TOKENIZER, EXPORT_WEIGHTS,
)
from llava_kit.atomic_files import atomic_write_text
from llava_kit.tensor_files import writing

if TYPE_CHECKING:
    from llava_kit.model.vlm import LlavaModel

EXPORT_PROCESSOR = "processor"


def export_llava_kit(model: "LlavaModel", recipe_yaml: str, out: Path) -> None:
    """Write the recipe, every weight (LoRA must be merged already) and the tokenizer.

    The encoder's image processor is saved too (``processor/``) for users who preprocess
    images themselves; ``load`` rebuilds it from the recipe like the run did.
    """
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / EXPORT_RECIPE, recipe_yaml)
    # save_model keeps one copy of tied tensors (e.g. tied input/output embeddings).
    with writing(out / EXPORT_WEIGHTS):
        save_model(model, str(out / EXPORT_WEIGHTS))
    model.tokenizer.save_pretrained(out / EXPORT_TOKENIZER)
    processor = getattr(model.encoder, "processor", None)
    if processor is not None and hasattr(processor, "save_pretrained"):
        processor.save_pretrained(out / EXPORT_PROCESSOR)
    manifest = {"format": "llava-kit", "version": EXPORT_FORMAT_VERSION, "tokenizer": EXPORT_TOKENIZER}
    atomic_write_text(out / EXPORT_MANIFEST, json.dumps(manifest, indent=2) + "\n")
