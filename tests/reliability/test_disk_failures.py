"""A read-only or full file system under the run directory, for real: a small tmpfs mounted
for the test (root only). Each failure comes after the data check passed, and must still be
one screen naming the file and what to do."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@contextlib.contextmanager
def _tmpfs(path: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    path.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"this machine cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _run(kit: SimpleNamespace, sqa: Path, folder: Path, out: Path) -> str:
    recipe = kit.save_recipe(folder / "recipe.yaml", kit.llava_recipe(sqa, folder))
    done = kit.run_cli(["run", str(recipe), "--no-eval", "--output-dir", str(out)], folder)
    shown = done.stdout + done.stderr
    assert done.returncode == 2, shown
    assert "Traceback" not in shown
    return shown


def test_a_read_only_output_folder_is_one_screen(tmp_path: Path, sqa: Path, kit: SimpleNamespace) -> None:
    with _tmpfs(tmp_path / "ro", "1m", read_only=True) as mount:
        shown = _run(kit, sqa, tmp_path, mount / "run")
    assert f"{mount / 'run'}" in shown
    assert "Read-only file system" in shown and "choose a writable place" in shown


def test_a_full_disk_is_one_screen_naming_the_file(tmp_path: Path, sqa: Path, kit: SimpleNamespace) -> None:
    # Room for the resolved recipe and the metrics, not for the first checkpoint.
    with _tmpfs(tmp_path / "small", "24k") as mount:
        shown = _run(kit, sqa, tmp_path, mount / "run")
    assert "No space left on device" in shown and str(mount / "run") in shown
    assert "free space on that disk, or write elsewhere" in shown
