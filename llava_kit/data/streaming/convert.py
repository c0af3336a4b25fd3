"""Writing a data set as shards (`llava-kit data convert`): the samples its data format
loads, each as JSON beside its images' bytes, ``shard_size`` samples to a tar file.

The records are read and checked by the data format itself (a bad record stops the
convert, listed with every other one), so a shard holds exactly the samples training on
the file would see. Each shard is written atomically and the index last, so an
interrupted convert leaves no index and is never read as finished.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import webdataset

from llava_kit.atomic_files import atomic_output, atomic_write_text
from llava_kit.data.formats.base import DataFormat
from llava_kit.data.sample import Sample
from llava_kit.data.streaming.shards import INDEX_FILE, ShardIndex
from llava_kit.errors import DataError


def shard_name(number: int) -> str:
    return f"shard-{number:06d}.tar"


def convert_to_shards(
    data_format: DataFormat, out: Path, shard_size: int,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> ShardIndex:
    """Write ``data_format``'s samples into ``out`` (a new or empty folder)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"--out {out} exists and is not an empty folder",
                        hint="choose a new folder for the shards")
    samples = data_format.load()
    if not samples:
        raise DataError("the data set has no samples to write", hint="check the data file")
    out.mkdir(parents=True, exist_ok=True)
    shards: list[tuple[str, int]] = []
    for number, start in enumerate(range(0, len(samples), shard_size)):
        chunk = samples[start:start + shard_size]
        name = shard_name(number)
        with atomic_output(out / name) as temp, temp.open("wb") as stream:
            writer = webdataset.TarWriter(stream)
            for offset, sample in enumerate(chunk):
                writer.write(_record(f"{start + offset:09d}", sample))
            writer.close()
        shards.append((name, len(chunk)))
        progress(start + len(chunk), len(samples))
    index = ShardIndex(out, tuple(shards))
    atomic_write_text(out / INDEX_FILE, json.dumps(index.as_json(), indent=1))
    return index


def _record(key: str, sample: Sample) -> dict[str, object]:
    """One sample as tar members: its JSON, then each image's bytes under its suffix."""
    names = [f"{index}{path.suffix.lower() or '.img'}" for index, path in enumerate(sample.images)]
    record: dict[str, object] = {"__key__": key, "json": json.dumps({
        "id": sample.id,
        "messages": [[message.role, message.content] for message in sample.messages],
        "images": names,
    }).encode("utf-8")}
    for name, path in zip(names, sample.images):
        record[name] = path.read_bytes()
    return record
