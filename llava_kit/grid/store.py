"""The grid's stage store: ``store/<key>/`` holds one finished stage, shared by every cell
whose stage has that key.

An entry holds what the runner left in ``checkpoints/<stage>/`` when the stage finished
(``final/``, ``connector.safetensors``, ``summary.json``), the stage's metric records
(so a cell that reuses it still plots its loss) and ``origin.json`` (which cell trained it).
Entries appear by an atomic rename, so a reader sees a whole entry or none; the first
of two cells publishing the same key wins.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from llava_kit.atomic_files import LEFTOVER_DIRECTORY, DirectoryExists, atomic_directory
from llava_kit.train.checkpoint import DamagedCheckpoint, verify_checkpoint
from llava_kit.train.metrics import MetricsLogger, read_metrics
from llava_kit.train.run_dir import RunDir, StageDir

ORIGIN_FILE = "origin.json"
log = logging.getLogger("llava_kit")


def _entry_metrics(entry: Path) -> Path:
    """An entry keeps its stage's metric records under the name a run directory uses."""
    return RunDir(entry).metrics


class StageStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def entry(self, key: str) -> Path:
        return self.root / key

    def has(self, key: str) -> bool:
        return StageDir(self.entry(key)).is_reusable()

    def take(self, key: str) -> bool:
        """Whether the entry exists and its files match their checksums. A damaged entry
        is moved aside (``.damaged-<key>-<time>``, with a warning naming the file), so the
        cell trains the stage again and publishes a good entry in its place."""
        if not self.has(key):
            return False
        entry = self.entry(key)
        try:
            verify_checkpoint(StageDir(entry).final)
        except DamagedCheckpoint as exc:
            aside = self.root / f".damaged-{key}-{int(time.time())}"
            with contextlib.suppress(OSError):  # another cell moved it first
                os.rename(entry, aside)
            log.warning("stage store entry %s is damaged and was moved to %s: %s",
                        key, aside, exc.message)
            return False
        return True

    def keys(self) -> list[str]:
        if not self.root.is_dir():
            return []
        # Entries being written, and damaged ones moved aside, are not entries.
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and not p.name.startswith(".")
                      and not LEFTOVER_DIRECTORY.search(p.name) and self.has(p.name))

    def origin(self, key: str) -> dict[str, Any]:
        path = self.entry(key) / ORIGIN_FILE
        return json.loads(path.read_text()) if path.is_file() else {}

    def publish(self, key: str, run_dir: Path, stage: str, cell: str) -> bool:
        """Copy a finished stage of ``run_dir`` into the store; False if it was already there."""
        if self.has(key):
            return False
        source = RunDir(run_dir).stage(stage)
        metrics = RunDir(run_dir).metrics
        records = [r for r in read_metrics(metrics) if r.get("stage") == stage] \
            if metrics.is_file() else []
        try:
            with atomic_directory(self.entry(key), replace=False) as temp:
                for part, copy in zip(source.finished_parts, StageDir(temp).finished_parts,
                                      strict=True):
                    _link_tree(part, copy)
                _entry_metrics(temp).write_text("".join(json.dumps(r) + "\n" for r in records))
                (temp / ORIGIN_FILE).write_text(json.dumps(
                    {"cell": cell, "stage": stage, "time": time.time()}, indent=2
                ))
        except DirectoryExists:  # another process published the same key first
            return False
        return True

    def materialise(self, key: str, run_dir: Path, stage: str) -> None:
        """Put the stored stage into ``run_dir/checkpoints/<stage>`` (hard links where possible)
        and append its metric records to the run's metrics.jsonl."""
        entry = self.entry(key)
        target = RunDir(run_dir).stage(stage)
        target.path.mkdir(parents=True, exist_ok=True)
        for part, copy in zip(StageDir(entry).finished_parts, target.finished_parts, strict=True):
            _link_tree(part, copy)
        stored = _entry_metrics(entry)
        if stored.is_file():
            logger = MetricsLogger(RunDir(run_dir).metrics)
            for record in read_metrics(stored):
                logger.log(record)


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link (or copy, across file systems) a file or a folder tree."""
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        for child in source.iterdir():
            _link_tree(child, target / child.name)
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
