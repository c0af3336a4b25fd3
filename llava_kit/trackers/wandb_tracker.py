"""``wandb``: a Weights & Biases run per llava-kit run; a grid's cells share the grid's
name as their group, so the project's group view compares them.

The API key comes from ``WANDB_API_KEY`` (or ``wandb login``), never from the recipe. Files
go to the run directory's wandb/ folder unless ``WANDB_DIR`` says otherwise; ``mode:
offline`` runs are uploaded later with ``wandb sync <run dir>/wandb/offline-run-*``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from llava_kit.components import Options
from llava_kit.trackers.base import Point, Tracker, TrackerRun


class WandbOptions(Options):
    """Options of ``wandb``; unset ones fall back to wandb's environment variables."""

    project: str | None = Field(None, description="project (default: WANDB_PROJECT, else llava-kit)")
    entity: str | None = Field(None, description="team or user (default: WANDB_ENTITY, else yours)")
    mode: Literal["online", "offline", "disabled"] | None = Field(
        None, description="online, offline or disabled (default: WANDB_MODE, else online)")
    tags: list[str] = Field(default_factory=list, description="tags of the run")


class WandbTracker(Tracker):
    """Weights & Biases: one run per llava-kit run, a grid's cells in the grid's group."""

    Options: ClassVar[type[Options]] = WandbOptions
    requires = ("wandb",)
    install = 'pip install "llava-kit[wandb]"'

    def start(self, run: TrackerRun) -> bool:
        import wandb

        options: WandbOptions = self.options  # type: ignore[assignment]
        mode = options.mode or os.environ.get("WANDB_MODE") or "online"
        # Without a key wandb would ask for one on the terminal, holding up the training.
        if mode == "online" and not wandb.login(prompt=False, verify=False):
            raise RuntimeError("no W&B API key: set WANDB_API_KEY (or run `wandb login`), "
                               "or use mode: offline")
        stored = run.state.get("id")
        # wandb makes its wandb/ folder inside the one it is given: the run directory.
        parent = None if os.environ.get("WANDB_DIR") else str(run.layout.wandb.parent)
        self._run = wandb.init(
            project=options.project or os.environ.get("WANDB_PROJECT") or "llava-kit",
            entity=options.entity, mode=mode, tags=options.tags or None,
            name=run.name, group=run.group, job_type="grid-cell" if run.group else "run",
            # A stored id reopens the run: the resumed steps continue its history.
            id=stored, resume="allow" if stored else None,
            config=None if stored else run.config,
            dir=parent,
            reinit="create_new",  # one run per llava-kit run, beside any the caller has open
        )
        run.state["id"] = self._run.id
        return stored is not None

    def log(self, point: Point) -> None:
        self._run.log(point.values, step=point.step)

    def summary(self, values: dict[str, float], step: int) -> None:
        self._run.summary.update(values)

    def artifact(self, path: Path) -> None:
        import wandb

        if path.suffix == ".png":
            self._run.log({f"files/{path.stem}": wandb.Image(str(path))})
        # A copy in the run's own files folder: saved as it is now, with no symlink back.
        copy = Path(self._run.dir) / path.name
        shutil.copyfile(path, copy)
        self._run.save(str(copy), base_path=self._run.dir, policy="now")

    def finish(self, ok: bool) -> None:
        self._run.finish(exit_code=0 if ok else 1)
