"""Building a token store: read the data once, tokenize it in parallel, write the columns.

The build runs in a forked process of its own where it can, so the memory that holds every
loaded sample goes back to the system when it ends instead of staying with a training
process. There the samples are read (bad records collected, not raised), split into one
contiguous part per build process, tokenized by forked children that inherit them, and
the parts joined into the store's columns inside an atomic folder: a build that dies
leaves no store, only a temporary folder that the next build removes.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from llava_kit.atomic_files import atomic_directory
from llava_kit.data.duplicates import find_duplicates, sample_location
from llava_kit.data.formats.base import DataFormat
from llava_kit.data.formats.problems import collecting_problems
from llava_kit.data.sample import Sample
from llava_kit.data.sample_tokens import text_problems
from llava_kit.data.token_store import columns
from llava_kit.data.token_store.findings import Findings, StoredTokenProblem
from llava_kit.data.token_store.forked import can_fork, run_forked
from llava_kit.data.token_store.key import file_signature
from llava_kit.data.token_store.tokenizing import IDS_DTYPE, Tokenizer, part_files, tokenize_part
from llava_kit.errors import DataError
from llava_kit.progress_bars import counting_bar

KEY_FILE = "key.json"
# Below this many samples per process, starting another costs more than it saves.
MIN_PART = 2000
MAX_PROCESSES = 64


@dataclass(frozen=True)
class BuildJob:
    data_format: DataFormat
    how: Tokenizer
    label: str  # what the data is ("stages.finetune"), for the progress bar
    key: dict[str, Any]
    # Each source file's signature when the key was taken: one that changes during the
    # build would leave the store keyed by contents it does not hold.
    signatures: dict[Path, tuple[str, int, int, int]]


def build_processes() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def build_store(job: BuildJob, folder: Path, processes: int | None = None) -> None:
    """Build the store of ``job`` and publish it at ``folder`` (replacing what is there)."""
    wanted = processes or build_processes()
    if can_fork():
        run_forked([partial(_build, job, folder, wanted)])
    else:
        _build(job, folder, 1)


def _build(job: BuildJob, folder: Path, processes: int) -> None:
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(f"token store: reading the data of {job.label}")
    with collecting_problems() as dropped:
        samples = job.data_format.load()
    with collecting_problems():
        unknown = job.data_format.unknown_fields()
    findings = Findings(dropped=dropped, unknown=unknown,
                        duplicates=find_duplicates(samples, dropped))
    for index, sample in enumerate(samples):
        found = text_problems(sample)
        if found:
            findings.text[index] = found
    parts = max(1, min(processes, MAX_PROCESSES, len(samples) // MIN_PART))
    with atomic_directory(folder) as temp:
        files = _tokenize(samples, job, temp, parts, console)
        _write_columns(samples, files, temp, findings)
        _check_unchanged(job.signatures)
        (temp / KEY_FILE).write_text(json.dumps(
            {"key": job.key, "samples": len(samples)}, indent=2), encoding="utf-8")


def _tokenize(samples: list[Sample], job: BuildJob, temp: Path, parts: int,
              console: Console) -> list[dict[str, Path]]:
    bounds = np.linspace(0, len(samples), parts + 1).astype(int).tolist()
    files = [part_files(temp, part) for part in range(parts)]
    with counting_bar("samples", console=console) as bar:
        task = bar.add_task(f"tokenizing {job.label}", total=len(samples))
        if parts == 1:
            tokenize_part(samples, 0, len(samples), job.how, files[0],
                          lambda done: bar.advance(task, done))
            return files
        gc.freeze()  # the tokenizing children then never touch (and so copy) the samples
        counter = multiprocessing.get_context("fork").Value("q", 0)

        def advance(done: int) -> None:
            with counter.get_lock():
                counter.value += done

        run_forked(
            [partial(tokenize_part, samples, bounds[part], bounds[part + 1], job.how,
                     files[part], advance) for part in range(parts)],
            poll=lambda: bar.update(task, completed=counter.value),
        )
    return files


def _write_columns(samples: list[Sample], files: list[dict[str, Path]], temp: Path,
                   findings: Findings) -> None:
    columns.write_concatenated(columns.array_path(temp, "ids"), np.dtype(IDS_DTYPE),
                               [part["ids"] for part in files])
    columns.write_concatenated(columns.array_path(temp, "trained"), np.dtype(np.uint8),
                               [part["trained"] for part in files])
    numbers = np.concatenate([np.load(part["numbers"]) for part in files])
    columns.save_array(temp, "token_offsets", columns.offsets_from_lengths(numbers[:, 0]))
    columns.save_array(temp, "answer_text_before", numbers[:, 1].astype(np.int32))
    columns.save_array(temp, "answer_images_before", numbers[:, 2].astype(np.int32))
    for part in files:
        for index, kind, message, error, hint in json.loads(part["problems"].read_text()):
            findings.tokens[index] = StoredTokenProblem(kind, message, error, hint)
        for path in part.values():
            path.unlink()
    counts = np.fromiter((len(s.images) for s in samples), dtype=np.int64, count=len(samples))
    columns.save_array(temp, "image_offsets", columns.offsets_from_lengths(counts))
    columns.save_strings(temp, "images", (str(path) for s in samples for path in s.images))
    columns.save_strings(temp, "sample_ids", (s.id for s in samples))
    columns.save_strings(temp, "origins",
                         (sample_location(s, index) for index, s in enumerate(samples)))
    findings.save(temp)


def _check_unchanged(signatures: dict[Path, tuple[str, int, int, int]]) -> None:
    for path, before in signatures.items():
        if file_signature(path) != before:
            raise DataError(
                f"{path} changed while its samples were being tokenized",
                hint="run again once nothing is writing the file any more",
            )
