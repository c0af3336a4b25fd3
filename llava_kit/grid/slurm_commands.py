"""SLURM's command-line tools (squeue, scancel, scontrol), called the one way: a missing
tool or a failed call is one message, never a traceback."""

from __future__ import annotations

import subprocess

from llava_kit.errors import LlavaKitError


def slurm_command(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise LlavaKitError(f"{command[0]} not found: this machine is not a SLURM client",
                            hint="run the grid from a SLURM login node, or drop --executor slurm") from None
    if check and result.returncode != 0:
        raise LlavaKitError(f"{' '.join(command)}: {result.stderr.strip()}")
    return result


def requeue(job_id: str) -> None:
    """Put a running job back in the queue (SLURM ends its tasks and starts it again later)."""
    slurm_command("scontrol", "requeue", job_id)
