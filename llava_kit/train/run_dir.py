"""The run directory: where it goes, what lies where inside it, when it may be reused, and
what makes it re-runnable.

``RunDir`` and ``StageDir`` are the one place that names the files and folders of a run
directory; every other module asks them for paths. The checkpoint format inside a stage's
folders (``step-XXXXXXXX``, the ``COMPLETE`` marker) belongs to ``train/checkpoint.py``.

Every file of a run is written through ``llava_kit.atomic_files``: a crash leaves either the
old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path

from llava_kit.atomic_files import atomic_write_text
from llava_kit.errors import LlavaKitError
from llava_kit.train.checkpoint import is_complete


_VERSIONED_PACKAGES = ("llava-kit", "torch", "transformers", "deepspeed")
_GIT_REVISION = re.compile(r"^[0-9a-f]{40,64}( \(dirty\))?$")


@dataclass(frozen=True)
class StageDir:
    """``checkpoints/<stage>/``: the stage's step checkpoints while it trains, then what it
    leaves when it finishes (the grid's stage store keeps entries with the same parts)."""

    path: Path

    @property
    def final(self) -> Path:
        """The final checkpoint (the stage's trained weights)."""
        return self.path / "final"

    @property
    def connector(self) -> Path:
        """The connector weights the next stage starts from."""
        return self.path / "connector.safetensors"

    @property
    def summary(self) -> Path:
        """The stage's StageSummary as JSON."""
        return self.path / "summary.json"

    @property
    def finished_parts(self) -> tuple[Path, Path, Path]:
        """Everything a finished stage leaves: final checkpoint, connector, summary."""
        return (self.final, self.connector, self.summary)

    def is_finished(self) -> bool:
        """The final checkpoint is complete (the connector is written before it)."""
        return is_complete(self.final)

    def has_summary(self) -> bool:
        return self.summary.is_file()

    def is_reusable(self) -> bool:
        """Finished, with its summary: what a resumed run (or a grid cell) may skip."""
        return self.is_finished() and self.has_summary()


@dataclass(frozen=True)
class RunDir:
    """One run directory (``runs/<recipe name>/<time>`` unless the user chose another)."""

    root: Path

    @classmethod
    def default(
        cls, recipe_name: str, base: Path = Path("runs"), now: datetime | None = None
    ) -> RunDir:
        """runs/<recipe name>/<YYYYmmdd-HHMMSS>: one folder per launch, sorted by time."""
        stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
        return cls(base / recipe_name / stamp)

    @classmethod
    def latest(cls, recipe_name: str, base: Path = Path("runs")) -> RunDir:
        """The newest run of ``recipe_name`` under ``base`` (for ``run --resume``)."""
        runs = sorted(p for p in (base / recipe_name).glob("*") if p.is_dir())
        if not runs:
            raise LlavaKitError(
                f"--resume: no earlier run of {recipe_name!r} under {base / recipe_name}",
                hint="pass --output-dir with the run directory to resume",
            )
        return cls(runs[-1])

    @property
    def resolved_recipe(self) -> Path:
        return self.root / "recipe.resolved.yaml"

    @property
    def provenance(self) -> Path:
        return self.root / "provenance.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def loss_plot(self) -> Path:
        return self.root / "loss.png"

    @property
    def skipped_samples(self) -> Path:
        return self.root / "skipped_samples.jsonl"

    @property
    def slurm_logs(self) -> Path:
        """The logs of the SLURM jobs that ran this run (``run --executor slurm``)."""
        return self.root / "logs" / "slurm"

    @property
    def tensorboard(self) -> Path:
        """TensorBoard's event files (``runtime.trackers: [tensorboard]``)."""
        return self.root / "tensorboard"

    @property
    def wandb(self) -> Path:
        """wandb's own folder (offline runs to sync); wandb names it, inside the root."""
        return self.root / "wandb"

    def tracker_state(self, name: str) -> Path:
        """What tracker ``name`` keeps between the starts of this run (its tool's run id)."""
        return self.root / "trackers" / f"{name}.json"

    @property
    def results(self) -> Path:
        """The folder evaluators write their files to."""
        return self.root / "results"

    def epoch_eval(self, stage: str, epoch: int) -> Path:
        """Where eval_every_epoch evaluates ``stage`` after ``epoch``; laid out as a run
        directory of its own, so its evaluators write to its ``results``."""
        return self.root / "epoch_eval" / f"{stage}-{epoch}"

    def stage(self, name: str) -> StageDir:
        return StageDir(self.root / "checkpoints" / name)

    @property
    def writer_lock_file(self) -> Path:
        return self.root / ".writer.lock"

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Hold the run directory's one-writer lock while the body runs.

        An OS file lock: it is released when the process ends however it ends (kill -9
        included), so no stale lock is ever left to delete by hand. The file names the
        holder for the error another writer gets.
        """
        handle = open(self.writer_lock_file, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise LlavaKitError(
                f"run directory {self.root} is in use: {holder} is writing it",
                hint="wait for that run to end, or stop it, before resuming; two writers "
                "would interleave their steps and checkpoints",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


def prepare_run_dir(path: Path, *, resume: bool) -> Path:
    """Creates a fresh run directory, or checks that a resumed one is really a run directory."""
    if resume:
        if not path.is_dir():
            raise LlavaKitError(
                f"cannot resume: run directory {path} does not exist",
                hint="pass the --output-dir of the run to resume, "
                "or drop --resume to start a new run",
            )
        recipe = RunDir(path).resolved_recipe
        if not recipe.is_file():
            raise LlavaKitError(
                f"cannot resume: {path} holds no {recipe.name}, "
                "so it is not a llava-kit run directory",
                hint="pass the --output-dir of an earlier `llava-kit run`, or drop --resume",
            )
        return path
    if path.exists() and not path.is_dir():
        raise LlavaKitError(
            f"run directory {path} exists and is a file",
            hint="choose another --output-dir",
        )
    if path.is_dir() and any(path.iterdir()):
        raise LlavaKitError(
            f"run directory {path} already exists and is not empty; refusing to overwrite it",
            hint="pass --resume to continue that run, or choose another --output-dir",
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def provenance(cwd: Path | None = None) -> dict[str, str]:
    """Package versions, the Python version and the git revision of ``cwd``'s repository."""
    info: dict[str, str] = {}
    for distribution in _VERSIONED_PACKAGES:
        try:
            info[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            info[distribution] = "not installed"
    info["python"] = platform.python_version()
    info["git"] = _git_revision(cwd or Path.cwd())
    return info


def _git_revision(cwd: Path) -> str:
    """``<sha>``, ``<sha> (dirty)``, ``not a repository`` or ``git not available``."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return "not a repository"
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "git not available"
    revision = head.stdout.strip()
    return f"{revision} (dirty)" if status.stdout.strip() else revision


def provenance_comment(info: dict[str, str]) -> str:
    """The ``# name version`` lines put on top of the resolved recipe."""
    lines = ["# Resolved recipe written by llava-kit; re-run it with `llava-kit run <this file>`."]
    for label, value in info.items():
        if label == "git" and not _GIT_REVISION.match(value):
            lines.append(f"# git: {value}")
        else:
            lines.append(f"# {label} {value}")
    return "\n".join(lines) + "\n"


def write_resolved_recipe(
    run_dir: Path, recipe_yaml: str, *, info: dict[str, str] | None = None
) -> Path:
    """Writes recipe.resolved.yaml (still a loadable recipe: provenance is in comments) and
    provenance.json with the same facts; returns the recipe's path."""
    info = provenance() if info is None else info
    body = recipe_yaml if recipe_yaml.endswith("\n") else recipe_yaml + "\n"
    layout = RunDir(run_dir)
    recipe_path = layout.resolved_recipe
    atomic_write_text(recipe_path, provenance_comment(info) + body)
    atomic_write_text(layout.provenance, json.dumps(info, indent=2) + "\n")
    return recipe_path
