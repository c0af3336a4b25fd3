"""A folder of webdataset-style shards, as `llava-kit data convert` writes it.

``shard-000000.tar`` ... hold one sample per key: ``<key>.json`` (its id, conversation and
image names) and ``<key>.<i>.<ext>`` (the bytes of image ``i``); ``index.json``, written
last, lists the shards with their sample counts. A folder without an index is a convert
that did not finish, and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llava_kit.errors import DataError
from llava_kit.json_io import read_json

INDEX_FILE = "index.json"
LAYOUT = 1


@dataclass(frozen=True)
class ShardIndex:
    folder: Path
    shards: tuple[tuple[str, int], ...]  # (file name, samples)

    @property
    def samples(self) -> int:
        return sum(count for _, count in self.shards)

    def paths(self) -> list[Path]:
        return [self.folder / name for name, _ in self.shards]

    def as_json(self) -> dict[str, Any]:
        return {"layout": LAYOUT, "samples": self.samples,
                "shards": [{"name": name, "samples": count} for name, count in self.shards]}


def read_index(folder: Path) -> ShardIndex:
    """The folder's index, checked: every shard named is a file in the folder."""
    path = folder / INDEX_FILE
    if not path.is_file():
        raise DataError(
            f"{folder}: no {INDEX_FILE}, so this is not a finished shard folder",
            hint="write the shards with `llava-kit data convert ... --out FOLDER` (an interrupted "
            "convert leaves no index: run it again)",
        )
    raw = read_json(path, hint="write the shards again with `llava-kit data convert`")
    if not isinstance(raw, dict) or raw.get("layout") != LAYOUT or not isinstance(
        raw.get("shards"), list
    ):
        raise DataError(f"{path}: not a shard index written by this llava-kit",
                        hint="write the shards again with `llava-kit data convert`")
    shards: list[tuple[str, int]] = []
    for entry in raw["shards"]:
        name = entry.get("name") if isinstance(entry, dict) else None
        count = entry.get("samples") if isinstance(entry, dict) else None
        if not isinstance(name, str) or Path(name).name != name or not isinstance(count, int):
            raise DataError(f"{path}: malformed shard entry {entry!r}",
                            hint="write the shards again with `llava-kit data convert`")
        if not (folder / name).is_file():
            raise DataError(f"{path}: shard {name} is missing from {folder}",
                            hint="copy the whole folder, or write the shards again")
        shards.append((name, count))
    if not shards:
        raise DataError(f"{path}: lists no shards", hint="convert a data set with samples")
    return ShardIndex(folder, tuple(shards))
