"""Where token stores live, and opening one: reused when its key matches, else built once
while every other process that wants it (ranks, grid cells, later runs) waits.

Stores live under ``runtime.token_store``, else ``$LLAVA_KIT_CACHE/tokens``, else
``~/.cache/llava-kit/tokens`` (``$XDG_CACHE_HOME`` is honoured): one folder per key, with
a lock file beside it. A folder is published whole (atomically), so a reader never sees
half a store; what an interrupted build leaves is a temporary folder, removed by the next
build of the same key.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from transformers import PreTrainedTokenizerBase

from llava_kit.atomic_files import LEFTOVER_DIRECTORY
from llava_kit.data.formats.base import DataFormat
from llava_kit.data.sample_tokens import Placement
from llava_kit.data.token_store.build import BuildJob, build_store
from llava_kit.data.token_store.key import (
    UnkeyableTokenizer,
    file_signature,
    key_digest,
    store_key,
)
from llava_kit.data.token_store.store import TokenStore
from llava_kit.data.token_store.tokenizing import Tokenizer
from llava_kit.templates.base import ChatTemplate

CACHE_ENV = "LLAVA_KIT_CACHE"


def default_root() -> Path:
    cache = os.environ.get(CACHE_ENV)
    if cache:
        return Path(cache) / "tokens"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llava-kit" / "tokens"


@dataclass(frozen=True)
class StoreRequest:
    """One stage's data as it will be tokenized; the specs are (name, options) pairs."""

    data_spec: tuple[str, dict[str, Any]]
    data_format: DataFormat
    template_spec: tuple[str, dict[str, Any]]
    template: ChatTemplate
    tokenizer: PreTrainedTokenizerBase
    placement: Placement
    label: str  # "stages.finetune"


def open_token_store(request: StoreRequest, root: Path | None = None,
                     processes: int | None = None) -> TokenStore | None:
    """The store of ``request``, built first if needed; None when the data format cannot
    name its files (or one is missing: reading the data says so) or the tokenizer cannot
    save itself, which leaves the data to be tokenized directly. The template must fit
    the tokenizer (checked before)."""
    files = request.data_format.source_files()
    if files is None or not all(path.is_file() for path in files):
        return None
    signatures = {path: file_signature(path) for path in files}
    try:
        key = store_key(request.data_spec, files, request.template_spec, request.tokenizer,
                        request.placement)
    except UnkeyableTokenizer:
        return None
    root = root or default_root()
    folder = root / key_digest(key)
    store = _usable(folder, key)
    if store is not None:
        return store
    root.mkdir(parents=True, exist_ok=True)
    with _build_lock(folder.with_name(f"{folder.name}.lock"), request.label):
        store = _usable(folder, key)  # another process may have built it meanwhile
        if store is not None:
            return store
        _remove_leftovers(folder)
        how = Tokenizer(request.template, request.tokenizer, request.placement)
        build_store(BuildJob(request.data_format, how, request.label, key, signatures),
                    folder, processes)
    store = TokenStore.open(folder)
    if store is None:
        raise OSError(f"the token store just built at {folder} cannot be read back")
    return store


def _usable(folder: Path, key: dict[str, Any]) -> TokenStore | None:
    store = TokenStore.open(folder)
    if store is None or store.key != key or not store.findings.is_current():
        return None
    return store


@contextlib.contextmanager
def _build_lock(path: Path, label: str) -> Iterator[None]:
    """Held while one process builds; released when it ends however it ends."""
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            Console(stderr=True, highlight=False, soft_wrap=True).print(
                f"token store: waiting for another process to finish tokenizing {label} "
                f"({path.with_suffix('')})"
            )
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(folder: Path) -> None:
    """Temporary folders of earlier builds of this key that died (this one holds the lock)."""
    for leftover in folder.parent.glob(f"{folder.name}.*"):
        if leftover.is_dir() and LEFTOVER_DIRECTORY.search(leftover.name):
            shutil.rmtree(leftover, ignore_errors=True)
