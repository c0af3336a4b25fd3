"""Running a grid's cells, one at a time in this process or K at once as subprocesses.

A cell starts only when no running cell is training a stage it needs, so a stage that
several cells share is trained once: the first cell trains and publishes it, the others
wait and reuse it from the store. A cell's failure is recorded and the others go on.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from llava_kit.atomic_files import atomic_write_text
from llava_kit.errors import LlavaKitError
from llava_kit.grid.plan import CELL_FILE, STORE_DIR, CellPlan, cell_dir, read_cell_record
from llava_kit.grid.store import StageStore
from llava_kit.train.run_dir import RunDir

log = logging.getLogger("llava_kit")
LOGS_DIR = "logs"
_POLL_SECONDS = 0.5
_LOG_TAIL = 2000


@dataclass
class _Running:
    plan: CellPlan
    claimed: set[str]
    process: subprocess.Popen[bytes] | None = None
    slot: int = 0


def device_slots(parallel: int) -> list[dict[str, str]]:
    """The environment of each of ``parallel`` worker slots: an even split of the visible
    GPUs, or on CPU an even split of the cores (torch threads)."""
    import torch

    if torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = [g for g in visible.split(",") if g.strip()] if visible \
            else [str(i) for i in range(torch.cuda.device_count())]
        if len(gpus) < parallel:
            raise LlavaKitError(
                f"--parallel {parallel} needs at least {parallel} GPUs; {len(gpus)} visible",
                hint=f"use --parallel {max(1, len(gpus))} or fewer",
            )
        share = len(gpus) // parallel
        return [{"CUDA_VISIBLE_DEVICES": ",".join(gpus[i * share:(i + 1) * share])}
                for i in range(parallel)]
    threads = str(max(1, (os.cpu_count() or 1) // parallel))
    return [{"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads} for _ in range(parallel)]


class GridExecutor:
    def __init__(
        self, grid_file: Path, grid_dir: Path, parallel: int = 1,
        on_done: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if parallel < 1:
            raise LlavaKitError(f"--parallel must be at least 1, got {parallel}")
        self.grid_file = grid_file
        self.grid_dir = grid_dir
        self.parallel = parallel
        self.store = StageStore(grid_dir / STORE_DIR)
        self.on_done = on_done or (lambda record: None)

    def run(self, plans: list[CellPlan]) -> list[dict[str, Any]]:
        """Run every cell that is not up to date; returns the records of the cells run."""
        pending = [plan for plan in plans if not plan.up_to_date]
        slots = device_slots(self.parallel) if self.parallel > 1 else [{}]
        free = list(range(len(slots)))
        running: list[_Running] = []
        records: list[dict[str, Any]] = []
        try:
            self._loop(pending, running, records, slots, free)
        finally:  # interrupted: do not leave orphaned cell processes training
            for job in running:
                if job.process is not None and job.process.poll() is None:
                    job.process.terminate()
        return records

    def _loop(
        self, pending: list[CellPlan], running: list[_Running], records: list[dict[str, Any]],
        slots: list[dict[str, str]], free: list[int],
    ) -> None:
        while pending or running:
            for plan in self._ready(pending, running, len(free)):
                pending.remove(plan)
                claimed = {k for k in plan.keys.values() if not self.store.has(k)}
                job = _Running(plan, claimed, slot=free.pop(0))
                (cell_dir(self.grid_dir, plan.name) / CELL_FILE).unlink(missing_ok=True)
                if self.parallel == 1:
                    from llava_kit.grid.worker import run_cell  # the subprocess entry module

                    run_cell(plan.cell, plan.keys, plan.key, self.grid_dir)
                    records.append(self._finish(job))
                    free.append(job.slot)
                else:
                    job.process = self._spawn(plan, slots[job.slot])
                    running.append(job)
            for job in [job for job in running if job.process and job.process.poll() is not None]:
                running.remove(job)
                free.append(job.slot)
                records.append(self._finish(job))
            if running:
                time.sleep(_POLL_SECONDS)

    def _ready(self, pending: list[CellPlan], running: list[_Running], free: int) -> list[CellPlan]:
        """Cells that can start now: none of their missing stages is being trained elsewhere."""
        in_flight = set().union(*(job.claimed for job in running)) if running else set()
        ready: list[CellPlan] = []
        for plan in pending:
            if len(ready) >= free:
                break
            missing = {k for k in plan.keys.values() if not self.store.has(k)}
            if missing & in_flight:
                continue
            ready.append(plan)
            in_flight |= missing
            if self.parallel == 1:
                break  # run it, then look again: it may have published what others need
        return ready

    def _spawn(self, plan: CellPlan, env: dict[str, str]) -> subprocess.Popen[bytes]:
        logs = self.grid_dir / LOGS_DIR
        logs.mkdir(parents=True, exist_ok=True)
        log.info("cell %s: started (%s)", plan.name, env or "default devices")
        command = [sys.executable, "-m", "llava_kit.grid.worker", str(self.grid_file),
                   str(self.grid_dir), plan.name]
        with open(logs / f"{plan.name}.log", "wb") as handle:
            return subprocess.Popen(
                command, stdout=handle, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            )

    def _finish(self, job: _Running) -> dict[str, Any]:
        """Publish the cell's newly finished stages and return its record."""
        plan = job.plan
        run_dir = cell_dir(self.grid_dir, plan.name)
        record = read_cell_record(self.grid_dir, plan.name)
        if record is None:  # the worker process died before it could write one
            code = job.process.returncode if job.process else None
            record = {"cell": plan.name, "key": plan.key, "overrides": plan.cell.overrides,
                      "keys": plan.keys, "status": "failed", "metrics": {}, "stages": {},
                      "error": f"worker exited with code {code}: {self._log_tail(plan.name)}"}
        published = [stage for stage, key in plan.keys.items()
                     if RunDir(run_dir).stage(stage).is_reusable()
                     and self.store.publish(key, run_dir, stage, plan.name)]
        record["published"] = published
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / CELL_FILE, json.dumps(record, indent=2) + "\n")
        self.on_done(record)
        return record

    def _log_tail(self, name: str) -> str:
        path = self.grid_dir / LOGS_DIR / f"{name}.log"
        if not path.is_file():
            return "no log"
        return path.read_bytes()[-_LOG_TAIL:].decode("utf-8", "replace").strip()
