"""What every stage of a run shares: the recipe, the run directory, the processes, the
device and precision, the metrics log and the resume and skip decisions."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from llava_kit.train.distributed import DistributedContext
from llava_kit.train.metrics import MetricsLog
from llava_kit.train.run_dir import RunDir

if TYPE_CHECKING:
    from llava_kit.recipes.schema import Recipe


@dataclass
class RunContext:
    recipe: "Recipe"
    run_dir: Path
    dist: DistributedContext
    device: torch.device
    precision: str
    metrics: MetricsLog
    resume: bool
    # runtime.on_bad_sample: skip -> stage name -> ids the data check found bad.
    skipped: dict[str, frozenset[str]] | None = None

    @property
    def layout(self) -> RunDir:
        return RunDir(self.run_dir)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The mixed-precision context of every forward pass of this run."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)
