"""Writes a crash cannot tear: files and folders appear whole or not at all."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from llava_kit import atomic_files
from llava_kit.atomic_files import (
    DirectoryExists, atomic_directory, atomic_output, atomic_write_bytes, atomic_write_text,
)


def test_atomic_write_replaces_content_with_the_usual_mode(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.txt"
    atomic_write_text(target, "first\n")
    atomic_write_text(target, "second ✓\n")
    assert target.read_text(encoding="utf-8") == "second ✓\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as temp:
            temp.write_bytes(b"half of the new")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_atomic_write_failure_in_rename_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "file.txt"
    atomic_write_text(target, "old")

    def failing_replace(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(atomic_files.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_atomic_directory_publishes_whole_and_replaces_the_old(tmp_path: Path) -> None:
    target = tmp_path / "entry"
    with atomic_directory(target) as temp:
        (temp / "a.txt").write_text("first")
        assert not target.exists()  # nothing is visible before the body finishes
    with atomic_directory(target) as temp:
        (temp / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]


def test_atomic_directory_failure_keeps_the_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "entry"
    with atomic_directory(target) as temp:
        (temp / "a.txt").write_text("kept")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_directory(target) as temp:
            (temp / "a.txt").write_text("torn")
            raise RuntimeError("killed")
    assert (target / "a.txt").read_text() == "kept"
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]


def test_atomic_directory_without_replace_keeps_the_first_writer(tmp_path: Path) -> None:
    target = tmp_path / "entry"
    with atomic_directory(target, replace=False) as temp:
        (temp / "a.txt").write_text("first")
    with pytest.raises(DirectoryExists):
        with atomic_directory(target, replace=False) as temp:
            (temp / "a.txt").write_text("second")
    assert (target / "a.txt").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]


def test_atomic_output_keeps_the_suffix_for_writers_that_add_it(tmp_path: Path) -> None:
    import numpy as np

    target = tmp_path / "features.npy"
    with atomic_output(target) as temp:
        np.save(temp, np.arange(3))
    assert np.load(target).tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["features.npy"]
