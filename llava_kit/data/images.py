"""Resolving and opening dataset images safely.

Image paths in dataset files are untrusted: they must stay inside the configured image
root (no ``..`` escapes, no absolute paths elsewhere, no symlinks pointing out).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from PIL import Image

from llava_kit.errors import DataError


@dataclass(frozen=True)
class BadImagePath:
    """Why an image path cannot be used; ``kind`` is how the data check lists it."""

    kind: Literal["outside_image_root", "missing_image"]
    message: str  # names the path and the root; the caller adds the file and the sample
    hint: str
    path: Path  # where the image was looked for


def locate_image(root: Path, relative: str) -> Path | BadImagePath:
    """The absolute path of ``relative`` under ``root``, or why it escapes or is missing."""
    root_resolved = root.resolve()
    candidate = (root_resolved / relative).resolve()
    if not candidate.is_relative_to(root_resolved):
        return BadImagePath(
            "outside_image_root",
            f"image {relative!r} resolves outside the image root {root_resolved}",
            "image paths must be relative to the image root and stay inside it",
            candidate,
        )
    if not candidate.is_file():
        return BadImagePath(
            "missing_image",
            f"image {relative!r} not found under {root_resolved}",
            "check the data format's image_root option and that the images are downloaded",
            candidate,
        )
    return candidate


def resolve_image(root: Path, relative: str, *, sample_id: str, source: Path) -> Path:
    """The absolute path of ``relative`` under ``root``; DataError if it escapes or is missing."""
    found = locate_image(root, relative)
    if isinstance(found, BadImagePath):
        raise DataError(f"{source}: sample {sample_id!r}: {found.message}", hint=found.hint)
    return found


# The most pixels an image may declare before it is decoded (8k x 8k, about 200 MB as RGB;
# below PIL's own warning threshold). A few hundred bytes of PNG can declare billions: such
# a "decompression bomb" is refused from its header, before any memory is spent on it.
MAX_IMAGE_PIXELS = 8192 * 8192


def decode_image(path: Path | BinaryIO, *, name: str | None = None) -> Image.Image:
    """Open and fully decode an image as RGB; DataError naming the file if it cannot be used.

    ``path`` may also be an open binary file (an image inside a shard), named by ``name``.
    """
    label = name or path
    hint = "re-download or remove the file; `llava-kit data check` lists every bad image"
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DataError(
                    f"image {label} declares {width} x {height} pixels, "
                    f"more than the {MAX_IMAGE_PIXELS:,} llava-kit decodes",
                    hint="shrink the image, or remove it if it was not meant to be that large",
                )
            return image.convert("RGB")
    # PIL's decoders report a bad file in several ways: a broken PNG chunk is a SyntaxError,
    # a truncated frame an EOFError, most others an OSError or ValueError.
    except (Image.DecompressionBombError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise DataError(f"cannot read image {label}: {exc}", hint=hint) from exc


def load_image(path: Path, *, sample_id: str) -> Image.Image:
    """``decode_image`` for one sample's image: its errors name the sample too."""
    try:
        return decode_image(path)
    except DataError as exc:
        raise DataError(f"sample {sample_id!r}: {exc.message}", hint=exc.hint) from exc
