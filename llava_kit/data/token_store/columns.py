"""The store's columns on disk: one ``.npy`` file each, strings as one UTF-8 blob plus
offsets, read back memory-mapped so that every process shares one copy in the page cache."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np


def array_path(folder: Path, name: str) -> Path:
    return folder / f"{name}.npy"


def save_array(folder: Path, name: str, values: np.ndarray) -> None:
    np.save(array_path(folder, name), np.ascontiguousarray(values))


def load_array(folder: Path, name: str) -> np.ndarray:
    """The column, memory-mapped read-only (its pages are read on first use)."""
    return np.load(array_path(folder, name), mmap_mode="r", allow_pickle=False)


def offsets_from_lengths(lengths: np.ndarray) -> np.ndarray:
    """[0, l0, l0+l1, ...]: row ``i`` of a ragged column is ``values[o[i]:o[i+1]]``."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def save_strings(folder: Path, name: str, values: Iterable[str]) -> None:
    """``name``.npy (the UTF-8 bytes of every value, back to back) and ``name``_offsets.npy."""
    encoded = [value.encode("utf-8") for value in values]
    lengths = np.fromiter((len(item) for item in encoded), dtype=np.int64, count=len(encoded))
    save_array(folder, name, np.frombuffer(b"".join(encoded), dtype=np.uint8))
    save_array(folder, f"{name}_offsets", offsets_from_lengths(lengths))


class StringColumn:
    """Strings read one at a time from a blob and its offsets, never all as objects."""

    def __init__(self, folder: Path, name: str) -> None:
        self.blob = load_array(folder, name)
        self.offsets = load_array(folder, f"{name}_offsets")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> str:
        start, stop = int(self.offsets[index]), int(self.offsets[index + 1])
        return bytes(self.blob[start:stop]).decode("utf-8")


def write_concatenated(target: Path, dtype: np.dtype, parts: list[Path]) -> int:
    """One ``.npy`` column from raw part files written in order; returns its length.

    The header is written first and the parts' bytes copied after it, so a column of
    gigabytes never has to be in memory at once.
    """
    itemsize = np.dtype(dtype).itemsize
    total = sum(part.stat().st_size for part in parts) // itemsize
    with target.open("wb") as out:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                  "fortran_order": False, "shape": (total,)}
        np.lib.format.write_array_header_1_0(out, header)
        for part in parts:
            with part.open("rb") as source:
                _copy(source, out)
    return total


def _copy(source: BinaryIO, out: BinaryIO) -> None:
    while block := source.read(1 << 24):
        out.write(block)
