"""Failures of the machine (disk, permissions, memory) reach the user as one screen."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

from llava_kit.cli.boundary import as_user_error

ROOT = Path(__file__).resolve().parents[2]


def test_a_full_disk_names_the_file_and_what_to_do() -> None:
    error = as_user_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/runs/r/metrics.jsonl"))
    assert error is not None
    assert error.message == f"{os.strerror(errno.ENOSPC)}: /runs/r/metrics.jsonl"
    assert "free space" in error.hint and "--debug" in error.hint


def test_a_rename_names_both_paths() -> None:
    error = as_user_error(OSError(errno.EROFS, "Read-only file system", "/a.tmp", None, "/a"))
    assert error is not None and error.message == "Read-only file system: /a.tmp -> /a"
    assert "read-only" in error.hint


def test_network_failures_and_other_errors_are_not_taken_for_user_errors() -> None:
    assert as_user_error(ConnectionRefusedError(errno.ECONNREFUSED, "refused")) is None
    assert as_user_error(ValueError("a bug")) is None
    assert "memory" in as_user_error(MemoryError()).message


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "afile").write_text("x\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    env.pop("LLAVA_KIT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "llava_kit.cli", *args, "run", str(ROOT / "recipes/demo/scienceqa_tiny.yaml"),
         "--set", "runtime.demo_data.n=30",
         "--output-dir", str(tmp_path / "afile" / "run")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )


def test_debug_shows_the_traceback_the_one_screen_error_hides(tmp_path: Path) -> None:
    plain = _run(tmp_path)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert f"Not a directory: {tmp_path / 'afile' / 'run'}" in plain.stderr
    debug = _run(tmp_path, "--debug")
    assert debug.returncode != 0 and "NotADirectoryError" in debug.stderr and "Traceback" in debug.stderr
