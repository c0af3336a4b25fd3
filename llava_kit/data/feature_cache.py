"""A disk cache of frozen-encoder features: computed once per image, then memory-mapped.

While a stage keeps the vision encoder frozen, its output for an image never changes, so
running it every epoch (and again in the next stage, or the next grid cell) is wasted
work. Features live under ``<root>/<key>/<content hash>.npy``: ``key`` digests the
encoder's signature (class and options: weights, selected layer, feature choice, aspect
handling), its input size and the numeric precision; the file name is the SHA-256 of the
image file's bytes. Changing any of them therefore misses the cache instead of reading
stale features. Files are written atomically, so an interrupted fill leaves no torn entry.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from llava_kit.atomic_files import atomic_output, atomic_write_text
from llava_kit.data.images import load_image
from llava_kit.digests import file_sha256
from llava_kit.encoders.base import VisionEncoder
from llava_kit.errors import DataError

KEY_FILE = "key.json"


def cache_key(encoder: VisionEncoder, precision: str) -> dict[str, Any]:
    """Everything that decides an image's features besides the image itself."""
    preprocess = getattr(encoder.preprocess, "__qualname__", type(encoder).__name__)
    return {
        "encoder": encoder.signature(),
        "image_size": encoder.image_size,
        "preprocess": preprocess,
        "precision": precision,
    }


class FeatureCache:
    """Features of one encoder configuration; ``fill`` computes, ``load`` reads."""

    def __init__(self, root: Path, encoder: VisionEncoder, precision: str = "fp32") -> None:
        key = cache_key(encoder, precision)
        text = json.dumps(key, sort_keys=True)
        self.dir = Path(root) / hashlib.sha256(text.encode()).hexdigest()[:16]
        self.key = key
        self._digests: dict[Path, str] = {}

    def entry(self, image: Path) -> Path:
        image = Path(image)
        if image not in self._digests:
            self._digests[image] = file_sha256(image)
        return self.dir / f"{self._digests[image]}.npy"

    def missing(self, images: Iterable[Path]) -> list[Path]:
        """Distinct images (by content) with no cached features yet, in first-seen order."""
        todo: dict[Path, Path] = {}
        for image in images:
            entry = self.entry(image)
            if not entry.is_file() and entry not in todo:
                todo[entry] = Path(image)
        return list(todo.values())

    def fill(
        self,
        images: Iterable[Path],
        encode: Callable[[torch.Tensor], torch.Tensor],
        preprocess: Callable[..., torch.Tensor],
        *,
        batch_size: int = 64,
    ) -> int:
        """Compute and store the features of every image not cached yet; returns how many."""
        todo = self.missing(images)
        if not todo:
            return 0
        self.dir.mkdir(parents=True, exist_ok=True)
        key_file = self.dir / KEY_FILE
        if not key_file.is_file():
            atomic_write_text(key_file, json.dumps(self.key, indent=2))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            pixels = torch.stack([preprocess(load_image(path, sample_id=str(path))) for path in chunk])
            with torch.no_grad():
                features = encode(pixels).float().cpu().numpy()
            for path, feature in zip(chunk, features):
                # Whole or absent after a crash; not fsynced: a lost entry is recomputed.
                with atomic_output(self.entry(path), durable=False) as temp:
                    np.save(temp, feature)
        return len(todo)

    def load(self, image: Path) -> torch.Tensor:
        """[N, d_v] features of one image (float32), read through a memory map."""
        entry = self.entry(image)
        try:
            mapped = np.load(entry, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise DataError(
                f"{image}: no readable cached features at {entry} ({exc})",
                hint="fill the cache first (training does), or delete the damaged file",
            ) from exc
        return torch.from_numpy(np.array(mapped))
