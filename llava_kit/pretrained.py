"""Saved model folders that users give us: weights files that cannot be read are reported
as one screen naming the files, for every component that loads through from_pretrained."""

from __future__ import annotations

import pickle
from pathlib import Path

from safetensors import SafetensorError

from llava_kit.errors import ModelError

# A file that cannot be read as weights at all: safetensors cut short or damaged, a pickle
# cut short, or a pickle holding objects that weights_only loading refuses.
UNREADABLE_WEIGHTS = (SafetensorError, pickle.UnpicklingError, EOFError)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def weights_error(where: str, source: str, exc: BaseException) -> ModelError:
    """The error for ``source`` (a folder or hub name) whose weights raised ``exc``."""
    folder = Path(source)
    files = sorted(p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES) \
        if folder.is_dir() else []
    named = ", ".join(str(path) for path in files) or source
    if isinstance(exc, pickle.UnpicklingError):
        return ModelError(
            f"{where}: {named} is a pickle holding more than tensors; llava-kit reads pickled "
            "weights only with weights_only=True, since other objects could run code",
            hint="use the model's safetensors weights (model.safetensors), or convert the pickle "
            "yourself if you trust its source (save_pretrained writes safetensors)",
        )
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ModelError(
        f"{where}: cannot read the weights in {named}: {detail}",
        hint="the file is damaged or cut short (an interrupted download or copy?): download or "
        "save the model again",
    )
