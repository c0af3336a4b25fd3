"""What each task of a cell's SLURM job runs: torch.distributed from SLURM's variables, then
the cell, on every rank; a failed cell fails the job (so ``afterok`` dependents do not start).

The object is pickled by submitit and called in every task that srun starts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from llava_kit.errors import LlavaKitError


@dataclass(frozen=True)
class SlurmCell:
    grid_file: str
    grid_dir: str
    cell: str

    def __call__(self) -> str:
        from submitit.helpers import TorchDistributedEnvironment

        from llava_kit.grid.worker import run_named_cell
        from llava_kit.train.distributed import shutdown_distributed

        logging.basicConfig(level=logging.INFO, format="%(message)s")
        # MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK; every GPU of the node stays
        # visible, since each rank picks cuda:LOCAL_RANK itself.
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        record = run_named_cell(Path(self.grid_file), Path(self.grid_dir), self.cell, publish=True)
        if record["status"] != "ok":
            raise LlavaKitError(f"cell {self.cell} failed: {record['error']}")
        shutdown_distributed()
        return record["status"]
