"""Re-run ``llava-kit run ...`` (or a grid cell) as several processes under a standard launcher.

One node: torch's own launcher (``torch.distributed.run``, i.e. torchrun). Several nodes
(a DeepSpeed hostfile): DeepSpeed's launcher, which starts the processes on every host
over ssh/pdsh. The launched processes see RANK/WORLD_SIZE and therefore do not launch
again; the options that asked for the launch are removed from their command line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from llava_kit.errors import LlavaKitError

# ``llava-kit run`` options consumed by the launch itself (with their value).
LAUNCHER_OPTIONS = ("--nproc", "--hostfile", "--master-port")
CLI_MODULE = "llava_kit.cli"


def launch_command(argv: list[str], nproc: int, hostfile: Path | None, master_port: int | None) -> list[str]:
    """The command that runs ``llava-kit`` with ``argv`` in ``nproc`` processes per node.

    ``argv`` is the llava-kit command line after the program name (``["run", "r.yaml",
    "--nproc", "4"]``). With a hostfile, its ``slots=`` decide the processes per host
    and an ``nproc`` above 1 caps them. Without ``master_port`` a free port is found
    (one node) or DeepSpeed's default is used (several nodes).
    """
    if nproc < 1:
        raise LlavaKitError(f"--nproc must be at least 1, got {nproc}")
    forwarded = strip_launcher_options(argv)
    if hostfile is None:
        return torchrun_command(CLI_MODULE, forwarded, nproc, master_port)
    if not hostfile.is_file():
        raise LlavaKitError(
            f"--hostfile: {hostfile} does not exist",
            hint='write one line per node, e.g. "worker-1 slots=8" (the DeepSpeed hostfile format)',
        )
    command = [sys.executable, "-m", "deepspeed.launcher.runner", "--hostfile", str(hostfile)]
    if master_port is not None:
        command += ["--master_port", str(master_port)]
    if nproc > 1:
        command += ["--num_gpus", str(nproc)]
    return [*command, "--module", CLI_MODULE, *forwarded]


def torchrun_command(module: str, args: list[str], nproc: int, master_port: int | None) -> list[str]:
    """``python -m module args...`` in ``nproc`` processes on this node, under torchrun."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            *_rendezvous(master_port), "-m", module, *args]


def strip_launcher_options(argv: list[str]) -> list[str]:
    """``argv`` without ``--nproc N``/``--hostfile H``/``--master-port P`` (also ``--opt=value``)."""
    kept: list[str] = []
    skip_value = False
    for arg in argv:
        if skip_value:
            skip_value = False
        elif arg in LAUNCHER_OPTIONS:
            skip_value = True
        elif not arg.startswith(tuple(f"{option}=" for option in LAUNCHER_OPTIONS)):
            kept.append(arg)
    return kept


def run_launcher(command: list[str]) -> int:
    """Run the launcher in the foreground; its exit code is the run's exit code."""
    return subprocess.run(command, check=False).returncode


def _rendezvous(master_port: int | None) -> list[str]:
    if master_port is None:
        # torchrun's standalone mode picks a free local port, so concurrent runs don't collide.
        return ["--standalone"]
    return ["--master_addr", "127.0.0.1", "--master_port", str(master_port)]
