"""Running a grid's cells, one at a time in this process or K at once as subprocesses.

A cell of several processes (``resources.nproc_per_node``) always runs as a subprocess,
started by torchrun as ``llava-kit run --nproc`` is, over its share of the GPUs.

A cell starts only when no running cell is training a stage it needs, so a stage that
several cells share is trained once: the first cell trains and publishes it, the others
wait and reuse it from the store. A cell's failure is recorded and the others go on.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from llava_kit.errors import LlavaKitError
from llava_kit.grid.plan import (
    CELL_FILE, FAILED, RUNNING, STORE_DIR, CellPlan, cell_dir, read_cell_record,
)
from llava_kit.grid.resources import Resources
from llava_kit.grid.store import StageStore
from llava_kit.train.launch import torchrun_command

log = logging.getLogger("llava_kit")
LOGS_DIR = "logs"
WORKER_MODULE = "llava_kit.grid.worker"
_POLL_SECONDS = 0.5
_LOG_TAIL = 2000


@dataclass
class _Running:
    plan: CellPlan
    claimed: set[str]
    process: subprocess.Popen[bytes] | None = None
    slot: int = 0


def device_slots(parallel: int, resources: Resources = Resources()) -> list[dict[str, str]]:
    """The environment of each of ``parallel`` worker slots: an even split of the visible
    GPUs (each slot at least a cell's GPUs), or on CPU an even split of the cores (torch
    threads per process)."""
    import torch

    if torch.cuda.is_available() and resources.gpus_per_process > 0:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = [g for g in visible.split(",") if g.strip()] if visible \
            else [str(i) for i in range(torch.cuda.device_count())]
        needed = parallel * resources.gpus_per_node
        if len(gpus) < needed:
            per_cell = f" with {resources.gpus_per_node} GPUs per cell" \
                if resources.gpus_per_node > 1 else ""
            raise LlavaKitError(
                f"--parallel {parallel}{per_cell} needs at least {needed} GPUs; "
                f"{len(gpus)} visible",
                hint=f"use --parallel {max(1, len(gpus) // resources.gpus_per_node)} or fewer, "
                "or fewer processes per cell (--nproc)",
            )
        share = len(gpus) // parallel
        return [{"CUDA_VISIBLE_DEVICES": ",".join(gpus[i * share:(i + 1) * share])}
                for i in range(parallel)]
    hidden = {"CUDA_VISIBLE_DEVICES": ""} if torch.cuda.is_available() else {}
    threads = str(max(1, (os.cpu_count() or 1) // (parallel * resources.nproc_per_node)))
    return [{**hidden, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
            for _ in range(parallel)]


class GridExecutor:
    def __init__(
        self, grid_file: Path, grid_dir: Path, parallel: int = 1,
        on_done: Callable[[dict[str, Any]], None] | None = None,
        resources: Resources = Resources(),
    ) -> None:
        if parallel < 1:
            raise LlavaKitError(f"--parallel must be at least 1, got {parallel}")
        if resources.nodes > 1:
            raise LlavaKitError(
                f"resources.nodes is {resources.nodes}; cells run locally on this one node",
                hint="set resources.nodes: 1 (and nproc_per_node to this node's GPUs) to run here",
            )
        self.grid_file = grid_file
        self.grid_dir = grid_dir
        self.parallel = parallel
        self.resources = resources
        # A cell of several processes needs its own launcher, so it is a subprocess too.
        self.subprocesses = parallel > 1 or resources.nproc_per_node > 1
        self.store = StageStore(grid_dir / STORE_DIR)
        self.on_done = on_done or (lambda record: None)

    def run(self, plans: list[CellPlan]) -> list[dict[str, Any]]:
        """Run every cell that is not up to date; returns the records of the cells run."""
        pending = [plan for plan in plans if not plan.up_to_date]
        slots = device_slots(self.parallel, self.resources) if self.subprocesses else [{}]
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
                if not self.subprocesses:
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
        args = [str(self.grid_file), str(self.grid_dir), plan.name]
        nproc = self.resources.nproc_per_node
        command = torchrun_command(WORKER_MODULE, args, nproc, None) if nproc > 1 \
            else [sys.executable, "-m", WORKER_MODULE, *args]
        with open(logs / f"{plan.name}.log", "wb") as handle:
            return subprocess.Popen(
                command, stdout=handle, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            )

    def _finish(self, job: _Running) -> dict[str, Any]:
        """Publish the cell's newly finished stages and return its record."""
        from llava_kit.grid.worker import publish_stages, write_record

        plan = job.plan
        record = read_cell_record(self.grid_dir, plan.name)
        if record is None or record["status"] == RUNNING:  # the worker process died
            code = job.process.returncode if job.process else None
            record = {"cell": plan.name, "key": plan.key, "overrides": plan.cell.overrides,
                      "keys": plan.keys, "status": FAILED, "metrics": {}, "stages": {},
                      "error": f"worker exited with code {code}: {self._log_tail(plan.name)}"}
        record["published"] = publish_stages(self.grid_dir, plan.name, plan.keys)
        write_record(self.grid_dir, record)
        self.on_done(record)
        return record

    def _log_tail(self, name: str) -> str:
        path = self.grid_dir / LOGS_DIR / f"{name}.log"
        if not path.is_file():
            return "no log"
        return path.read_bytes()[-_LOG_TAIL:].decode("utf-8", "replace").strip()
