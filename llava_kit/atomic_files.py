"""Writes that a crash cannot tear: a reader sees the old file (or folder) or the new one,
never half of one.

Everything goes to a temporary name next to its target, is fsynced, and is then renamed
into place; a rename within one directory is atomic on POSIX file systems.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable only by their owner; finished files get the usual mode.
_FILE_MODE = 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_output(path: Path, *, durable: bool = True) -> Iterator[Path]:
    """Yields a temporary path next to ``path``; on success it is moved onto ``path``.

    ``durable`` also fsyncs the file and its folder, so the new content survives a power
    loss; caches, which can be refilled, skip that cost. The temporary name ends with
    ``path``'s suffix, so writers that add a missing suffix (``numpy.save``) write exactly
    the yielded path.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(handle)
    temp = Path(temp_name)
    try:
        yield temp
        os.chmod(temp, _FILE_MODE)
        if durable:
            fsync_file(temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_directory(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_output(path) as temp:
        temp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class DirectoryExists(Exception):
    """``atomic_directory(replace=False)`` found its target already there."""


# ``<name>.tmp-<pid>`` while a folder is written, ``<name>.old-<pid>`` while it is swapped:
# what a crash can leave beside a published folder, safe to delete.
LEFTOVER_DIRECTORY = re.compile(r"\.(tmp|old)-\d+$")


@contextlib.contextmanager
def atomic_directory(path: Path, *, replace: bool = True) -> Iterator[Path]:
    """Yields an empty temporary folder next to ``path``; on success it becomes ``path``.

    With ``replace`` an existing ``path`` is swapped out (moved aside, then deleted: a
    folder cannot be renamed over a non-empty one); without it an existing ``path`` wins and
    ``DirectoryExists`` is raised, for concurrent writers of the same content.
    """
    temp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)  # this process's own earlier attempt
    temp.mkdir(parents=True)
    try:
        yield temp
        for child in temp.rglob("*"):
            if child.is_file():
                fsync_file(child)
        fsync_directory(temp)
        _publish_directory(temp, path, replace=replace)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _publish_directory(temp: Path, path: Path, *, replace: bool) -> None:
    old = path.with_name(f"{path.name}.old-{os.getpid()}")
    if path.exists():
        if not replace:
            raise DirectoryExists(path)
        shutil.rmtree(old, ignore_errors=True)
        os.rename(path, old)
    try:
        os.rename(temp, path)
    except OSError:
        if path.exists() and not replace:  # another writer published first
            raise DirectoryExists(path) from None
        raise
    fsync_directory(path.parent)
    shutil.rmtree(old, ignore_errors=True)


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_directory(path: Path) -> None:
    """Makes a rename inside ``path`` durable; a no-op where directories cannot be opened."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems (and Windows) refuse fsync on directories
    finally:
        os.close(descriptor)
