"""Decoding every image of a data set as the training loader would, with a progress bar.

Decoding a large data set takes minutes, so distinct files are decoded once, on a few
threads (PIL releases the GIL while it decodes), with the rate and the time left shown.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from llava_kit.data.images import decode_image
from llava_kit.errors import DataError
from llava_kit.progress_bars import counting_bar

# Enough threads to keep a few disks and cores busy without starving the rest of the node.
MAX_THREADS = 8
# Images handed to the threads at a time, so a million paths are not a million futures.
_CHUNK = 256


def undecodable_images(paths: Collection[Path], label: str) -> dict[Path, str]:
    """path -> why the training loader could not use it (corrupt, truncated, too large)."""
    failed: dict[Path, str] = {}
    ordered = list(paths)
    with _progress_bar() as bar, ThreadPoolExecutor(_threads()) as pool:
        task = bar.add_task(f"decoding images of {label}", total=len(ordered))
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start:start + _CHUNK]
            for path, error in zip(chunk, pool.map(_decode_error, chunk)):
                if error is not None:
                    failed[path] = error
            bar.advance(task, len(chunk))
    return failed


def _decode_error(path: Path) -> str | None:
    try:
        decode_image(path).close()
    except DataError as exc:
        return exc.message
    return None


def _threads() -> int:
    return max(1, min(MAX_THREADS, os.cpu_count() or 1))


def _progress_bar() -> Progress:
    # Every process of a launched run checks the data; one bar is enough.
    shown = os.environ.get("RANK", "0") == "0"
    return counting_bar("images", enabled=shown, console=Console(stderr=True))
