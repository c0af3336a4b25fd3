"""What one grid cell runs on: processes per node, nodes and GPUs per process.

A grid file's ``resources`` section applies to every cell (``llava-kit grid --nproc N``
overrides the processes per node). A cell of more than one process is a DeepSpeed job:
each process trains on one GPU (or, on CPU, on its share of the cores) and the
micro batches of a global batch are dealt across them, so the numbers match one process.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from llava_kit.errors import RecipeError
from llava_kit.recipes.deepspeed_presets import NO_DEEPSPEED
from llava_kit.recipes.problems import show_value

RESOURCE_KEYS = ("nproc_per_node", "nodes", "gpus_per_process")


@dataclass(frozen=True)
class Resources:
    nproc_per_node: int = 1
    nodes: int = 1
    gpus_per_process: int = 1  # 0: the processes use CPUs only

    @property
    def processes(self) -> int:
        return self.nproc_per_node * self.nodes

    @property
    def gpus_per_node(self) -> int:
        return self.nproc_per_node * self.gpus_per_process

    def with_nproc(self, nproc: int | None) -> Resources:
        """These resources with ``--nproc`` (when given) as the processes per node."""
        if nproc is None:
            return self
        if nproc < 1:
            raise RecipeError(f"--nproc must be at least 1, got {nproc}")
        return replace(self, nproc_per_node=nproc)

    def describe(self) -> str:
        gpus = "CPU only" if self.gpus_per_process == 0 else f"{self.gpus_per_process} GPU each"
        return (f"{self.nproc_per_node} process(es) per node x {self.nodes} node(s) "
                f"({gpus})")


def parse_resources(value: Any, label: str) -> Resources:
    """The grid file's ``resources`` mapping (absent: one process on one node)."""
    if value is None:
        return Resources()
    if not isinstance(value, dict):
        raise RecipeError(
            f"{label}: resources: must be a mapping of {', '.join(RESOURCE_KEYS)}, "
            f"got {show_value(value)}",
            hint="e.g. resources: {nproc_per_node: 8, nodes: 1, gpus_per_process: 1}",
        )
    unknown = [key for key in value if key not in RESOURCE_KEYS]
    if unknown:
        raise RecipeError(
            f"{label}: resources: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"resources has {', '.join(RESOURCE_KEYS)}"
        )
    counts = {}
    for key in RESOURCE_KEYS:
        number = value.get(key, getattr(Resources, key))
        least = 0 if key == "gpus_per_process" else 1
        if isinstance(number, bool) or not isinstance(number, int) or number < least:
            raise RecipeError(
                f"{label}: resources.{key}: must be a whole number of at least {least}, "
                f"got {show_value(number)}"
            )
        counts[key] = number
    if counts["gpus_per_process"] > 1:
        raise RecipeError(
            f"{label}: resources.gpus_per_process: {counts['gpus_per_process']}; each training "
            "process uses one GPU (data parallel, sharded by DeepSpeed ZeRO)",
            hint="use more processes instead: nproc_per_node: <GPUs per node>",
        )
    return Resources(**counts)


def check_multi_process(resources: Resources, cells: list[tuple[str, str]]) -> None:
    """Refuse several processes for a cell that trains without DeepSpeed.

    ``cells`` holds (cell name, its ``runtime.deepspeed``).
    """
    if resources.processes == 1:
        return
    plain = [name for name, deepspeed in cells if deepspeed == NO_DEEPSPEED]
    if plain:
        raise RecipeError(
            f"cell(s) {', '.join(plain)} run {resources.processes} processes but "
            "runtime.deepspeed is none: their replicas would not share gradients",
            hint="set runtime.deepspeed to zero2, zero3 or zero3_offload (in the base recipe "
            "or the grid's common section), or run one process per cell",
        )
