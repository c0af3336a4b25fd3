"""``--slurm partition=gpu,time=24:00:00,gpus_per_node=8,nodes=1,account=lab``: where and
for how long each cell's job runs. Processes per node come from the grid's resources."""

from __future__ import annotations

import re
from dataclasses import dataclass

from llava_kit.errors import LlavaKitError
from llava_kit.grid.resources import Resources

SLURM_KEYS = ("partition", "time", "account", "qos", "nodes", "gpus_per_node",
              "cpus_per_task", "mem", "warning")
_TIME = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")
_HINT = "e.g. --slurm partition=gpu,time=24:00:00,gpus_per_node=8,nodes=1,account=mylab"


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    minutes: int = 60
    account: str | None = None
    qos: str | None = None
    nodes: int | None = None  # None: the grid's resources.nodes
    gpus_per_node: int | None = None  # None: processes per node x GPUs per process
    cpus_per_task: int | None = None
    mem: str | None = None
    warning_seconds: int = 90  # the time-limit warning (USR2) comes this long before the end


def parse_slurm(text: str | None) -> SlurmOptions:
    if not text:
        return SlurmOptions()
    values: dict[str, str] = {}
    for part in (p for p in text.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not value.strip():
            raise LlavaKitError(f"--slurm: {part!r} is not key=value", hint=_HINT)
        if key not in SLURM_KEYS:
            raise LlavaKitError(
                f"--slurm: unknown key {key!r}; the keys are {', '.join(SLURM_KEYS)}", hint=_HINT)
        values[key] = value.strip()
    numbers = {key: _count(key, values[key])
               for key in ("nodes", "gpus_per_node", "cpus_per_task") if key in values}
    if "warning" in values:
        numbers["warning_seconds"] = _count("warning", values["warning"])
    options = SlurmOptions(
        partition=values.get("partition"), minutes=_minutes(values.get("time", "60")),
        account=values.get("account"), qos=values.get("qos"), mem=values.get("mem"), **numbers,
    )
    if options.warning_seconds >= options.minutes * 60:
        raise LlavaKitError(
            f"--slurm warning={options.warning_seconds}: the warning must come before the "
            f"job's time limit ({options.minutes} min)",
            hint="lower warning (seconds) or raise time")
    return options


def job_resources(resources: Resources, options: SlurmOptions) -> tuple[int, int, int]:
    """(nodes, tasks per node, GPUs per node) of each cell's job."""
    nodes = options.nodes if options.nodes is not None else resources.nodes
    needed = resources.gpus_per_node
    gpus = options.gpus_per_node if options.gpus_per_node is not None else needed
    if gpus < needed:
        raise LlavaKitError(
            f"--slurm gpus_per_node={gpus} is fewer than the {needed} GPUs a node of each cell "
            f"uses ({resources.describe()})",
            hint=f"ask for gpus_per_node={needed}, or lower --nproc",
        )
    return nodes, resources.nproc_per_node, gpus


def _count(key: str, value: str) -> int:
    if not value.isdigit() or (key == "nodes" and int(value) < 1):
        raise LlavaKitError(f"--slurm {key}={value}: must be a whole number", hint=_HINT)
    return int(value)


def _minutes(value: str) -> int:
    """SLURM's time formats: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS."""
    match = _TIME.fullmatch(value)
    if not match:
        raise LlavaKitError(f"--slurm time={value}: not a SLURM time limit",
                            hint="use minutes (90), HH:MM:SS (24:00:00) or D-HH:MM:SS (2-00:00:00)")
    days, first, second, third = match.groups()
    parts = [int(x) for x in (first, second, third) if x is not None]
    if days is not None:  # D-HH[:MM[:SS]]
        hours, minutes, seconds = (parts + [0, 0])[:3]
        total = int(days) * 1440 + hours * 60 + minutes + seconds / 60
    elif len(parts) == 3:
        total = parts[0] * 60 + parts[1] + parts[2] / 60
    elif len(parts) == 2:
        total = parts[0] + parts[1] / 60
    else:
        total = parts[0]
    return max(1, int(-(-total // 1)))
