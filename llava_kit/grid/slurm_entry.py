"""What each task of a SLURM job runs: torch.distributed from SLURM's variables, then a grid
cell (``SlurmCell``) or a whole run (``SlurmRecipe``) on every rank; a failure fails the job
(so ``afterok`` dependents do not start).

SLURM's time-limit warning (submitit asks for USR2, ``--signal=USR2@<seconds>``) stops
training after the current step on every rank with a checkpoint saved; rank 0 then
requeues the job, and the requeued job resumes from that checkpoint. SIGTERM (scancel,
preemption) stops the same way without requeueing: the next submission resumes.

The objects are pickled by submitit and called in every task that srun starts.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from llava_kit.errors import LlavaKitError

WARNING_SIGNAL = signal.SIGUSR2  # what submitit's --signal asks SLURM to send
log = logging.getLogger("llava_kit")


@dataclass(frozen=True)
class SlurmCell:
    grid_file: str
    grid_dir: str
    cell: str

    def __call__(self) -> str:
        from llava_kit.grid.plan import OK, STOPPED
        from llava_kit.grid.worker import run_named_cell
        from llava_kit.train.distributed import shutdown_distributed

        rank = _start_task()
        record = run_named_cell(Path(self.grid_file), Path(self.grid_dir), self.cell, publish=True)
        if record["status"] not in (OK, STOPPED):  # other ranks may not reach a barrier
            raise LlavaKitError(f"cell {self.cell} failed: {record['error']}")
        shutdown_distributed()  # every rank finished, or stopped together
        if record["status"] == STOPPED:
            _after_stop(record["stopped"]["signal"], f"cell {self.cell}: {record['error']}", rank)
        return record["status"]


@dataclass(frozen=True)
class SlurmRecipe:
    """``llava-kit run --executor slurm``: the run directory already holds the resolved
    recipe, so every start of the job (the first, or a requeued one) is a resume."""

    recipe_yaml: str
    run_dir: str
    evaluate: bool

    def __call__(self) -> str:
        from llava_kit.demo.prepare import ensure_demo_data
        from llava_kit.pipeline import run_recipe
        from llava_kit.recipes import validate_recipe
        from llava_kit.recipes.yaml_io import parse_yaml
        from llava_kit.train.distributed import shutdown_distributed
        from llava_kit.train.signals import Interrupted

        rank = _start_task()
        recipe = validate_recipe(parse_yaml(self.recipe_yaml, self.run_dir))
        ensure_demo_data(recipe)
        try:
            run_recipe(recipe, recipe_yaml=self.recipe_yaml, run_dir=Path(self.run_dir),
                       resume=True, evaluate=self.evaluate)
        except Interrupted as exc:  # on every rank, after they saved together
            shutdown_distributed()
            _after_stop(exc.signal_name, exc.message, rank)
        shutdown_distributed()
        return self.run_dir


def _start_task() -> int:
    """Stop signals, logging and torch.distributed's variables for this task; its rank."""
    from submitit.helpers import TorchDistributedEnvironment

    from llava_kit.train.signals import stop_on

    # Replace submitit's handlers: it requeues from inside the signal handler, without the
    # other ranks saving a checkpoint together, and ignores SIGTERM.
    stop_on(WARNING_SIGNAL)
    stop_on(signal.SIGTERM)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK; every GPU of the node stays visible,
    # since each rank picks cuda:LOCAL_RANK itself.
    environment = TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    log.info("SLURM job %s: task %d of %d", os.environ.get("SLURM_JOB_ID"), environment.rank,
             environment.world_size)
    return int(environment.rank)


def _after_stop(signal_name: str, message: str, rank: int) -> None:
    """Requeue after the time-limit warning (rank 0 asks; no result for submitit to record,
    the requeued job writes it); fail the job after any other stop signal."""
    if signal_name != WARNING_SIGNAL.name:
        raise LlavaKitError(message)
    if rank == 0:
        from llava_kit.grid.slurm_commands import requeue

        job = os.environ["SLURM_JOB_ID"]
        log.info("%s; requeueing job %s", message, job)
        requeue(job)
    raise SystemExit(0)
