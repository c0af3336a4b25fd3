"""Reading record files (a JSON list, or JSONL one record per line) and each record's id.

Shared by every reader of LLaVA-style record files and by the other record inputs
(datagen contexts, LLaVA-Bench questions).
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from llava_kit.data.formats.problems import Problems
from llava_kit.errors import DataError
from llava_kit.json_io import parse_json, read_json

# Where the released LLaVA data files live, named when one is missing.
PUBLIC_DATA_FILES: dict[str, str] = {
    "chat.json": "CC-595K, in the Hugging Face dataset liuhaotian/LLaVA-CC3M-Pretrain-595K "
    "(images in its images.zip; set data.image_root to the unpacked folder)",
    "blip_laion_cc_sbu_558k.json": "LCS-558K, in the Hugging Face dataset "
    "liuhaotian/LLaVA-Pretrain (images in its images.zip; set data.image_root to the unpacked folder)",
    "llava_instruct_158k.json": "LLaVA-Instruct-158K, in the Hugging Face dataset "
    "liuhaotian/LLaVA-Instruct-150K (images: COCO train2017; set data.image_root to it)",
    "llava_v1_5_mix665k.json": "mix-665K, in the Hugging Face dataset "
    "liuhaotian/LLaVA-Instruct-150K (images: COCO, GQA, OCR-VQA, TextVQA, VisualGenome, laid out as the LLaVA repository's "
    "docs describe; set data.image_root to their parent folder)",
}


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large file becomes objects.

    Reading builds millions of small objects and no cycles; the collector would otherwise
    rescan them over and over, about doubling the time to read a 158K-record file.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_records(source: Path, limit: int | None) -> list[tuple[str, Any]]:
    """(location, record) pairs from a JSON list file or, for ``.jsonl``, one record per line.

    The location ("record [3]" or "line 4") is how problems point back into the file.
    """
    if not source.is_file():
        public = PUBLIC_DATA_FILES.get(source.name)
        raise DataError(
            f"data file not found: {source} (data format option 'path': recipe field "
            "stages.<stage>.data.path)",
            hint=(f"{source.name} is {public}; " if public else "")
            + "set the field to the file, e.g. --set stages.<stage>.data.path=/data/"
            f"{source.name}; relative paths are taken from the working directory",
        )
    if source.suffix == ".jsonl":
        return _read_jsonl(source, limit)
    try:
        data = read_json(source, hint="the file must be one JSON list of records")
    except DataError as exc:
        if "Extra data" in exc.message:
            exc.hint = f"{exc.hint}; if it holds one record per line, give it the .jsonl extension"
        raise
    if not isinstance(data, list):
        raise DataError(
            f"{source}: expected a JSON list of records, found a {type(data).__name__}",
            hint="put the records in a top-level list, or use one record per line in a .jsonl file",
        )
    if limit is not None:
        data = data[:limit]
    return [(f"record [{index}]", record) for index, record in enumerate(data)]


def _read_jsonl(source: Path, limit: int | None) -> list[tuple[str, Any]]:
    records: list[tuple[str, Any]] = []
    problems = Problems(source)
    with source.open(encoding="utf-8") as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if limit is not None and len(records) >= limit:
                    break
                text = line.rstrip("\r\n")
                if not text.strip():
                    continue
                where = f"line {number}"
                try:
                    records.append((where, parse_json(text, where, column_only=True)))
                except DataError as exc:
                    problems.add(where, exc.message.removeprefix(f"{where}: "))
        except UnicodeDecodeError as exc:
            raise DataError(f"{source}: not UTF-8 text ({exc.reason})",
                            hint="save the file as UTF-8") from None
    problems.raise_if_any()
    return records


def record_header(record: Any, where: str, problems: Problems) -> tuple[str, str] | None:
    """A record's id and the location to name in its problems, or None if unusable."""
    if not isinstance(record, dict):
        problems.add(where, f"expected a JSON object, found a {type(record).__name__}")
        return None
    sample_id = record_id(record, where, problems)
    if sample_id is None:
        return None
    label = f"sample {sample_id!r} ({where})"
    problems.ids[label] = sample_id
    problems.records[label] = where
    return sample_id, label


def record_id(record: dict[str, Any], where: str, problems: Problems) -> str | None:
    """The record's id as a string, or None after recording why it is unusable."""
    raw = record.get("id")
    if raw is None:
        problems.add(where, "missing 'id'; every record needs a string or integer id")
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        problems.add(where, f"'id' must be a string or an integer, not {type(raw).__name__}")
        return None
    if raw == "":
        problems.add(where, "'id' is empty")
        return None
    return str(raw)
