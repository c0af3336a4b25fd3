"""Which process this is in a multi-process run, and the few collectives the runner needs.

Launchers (``torchrun``, ``deepspeed``) describe the process through RANK, WORLD_SIZE
and LOCAL_RANK; without them the run is a single process and every helper here is a
no-op, so the runner can call them unconditionally.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")

# What launchers set; without all of them DeepSpeed would go looking for MPI.
_LAUNCHER_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files and logs; the other ranks only compute."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls) -> DistributedContext:
        rank = int(os.environ.get("RANK", "0"))
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            device = torch.device("cuda", local_rank)
        else:
            device = torch.device("cpu")
        return cls(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def select_deepspeed_accelerator() -> None:
    """Point DeepSpeed at the CPU when there is no GPU, before anything imports it.

    DeepSpeed falls back to the CPU by itself, but only after probing for other
    accelerators and logging a warning in every process; naming it is explicit. A value
    the user set is kept.
    """
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def communication_backend() -> str:
    """NCCL between GPUs; gloo on CPU (the only torch backend that runs everywhere)."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def init_distributed(backend: str | None = None, *, single_process_group: bool = False) -> DistributedContext:
    """Join the process group the launcher set up; idempotent.

    Without launcher variables this is a single process: no group is created unless
    ``single_process_group`` asks for one (DeepSpeed needs a group even for one process),
    in which case a world of one on a free local port is described in the environment.
    """
    launched = "WORLD_SIZE" in os.environ
    if not launched and not single_process_group:
        return DistributedContext.from_env()
    if not launched:
        _describe_single_process_world()
    context = DistributedContext.from_env()
    if context.device.type == "cuda":
        torch.cuda.set_device(context.device)
    if not dist.is_initialized():
        select_deepspeed_accelerator()
        import deepspeed

        if context.device.type == "cpu":
            _skip_shared_memory_kernel_build()
        deepspeed.init_distributed(dist_backend=backend or communication_backend(), verbose=False)
    return context


def _skip_shared_memory_kernel_build() -> None:
    """Keep DeepSpeed on CPU from compiling its shared-memory all-reduce kernel.

    Starting the process group on CPU JIT-builds that C++ kernel (minutes on a small
    machine, a crash where no compiler is installed), yet only tensor-parallel inference
    uses it: every training collective goes through gloo. DeepSpeed keeps the table of
    buildable ops in one module-level dict precisely so that it can be edited.
    """
    import deepspeed.ops
    from deepspeed.accelerator import get_accelerator

    kernel = get_accelerator().get_op_builder("ShareMemCommBuilder")
    buildable = getattr(deepspeed.ops, "__compatible_ops__", None)
    if kernel is not None and isinstance(buildable, dict):  # else: a slower start, still correct
        buildable[kernel.NAME] = False


def _describe_single_process_world() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    defaults = {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port),
    }
    for name in _LAUNCHER_ENV:
        os.environ.setdefault(name, defaults[name])


def shutdown_distributed() -> None:
    """Leave the process group on a successful exit: wait for every rank, then destroy it.

    A group still alive at interpreter exit is torn down by C++ static destructors while
    gloo's worker threads may still be running, and the process aborts with "terminate
    called without an active exception" (exit -6) after its work is done. Only the success
    path calls this: after an error the other ranks may never reach the barrier, and the
    launcher ends them anyway.
    """
    if not dist.is_initialized():
        return
    barrier()
    dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (e.g. until rank 0 has written a checkpoint others read)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def gather_to_main(obj: T) -> list[T]:
    """Every rank's picklable ``obj``, in rank order, on rank 0 (other ranks get [])."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return [obj]
    gathered: list[object] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered if gathered is not None else []  # type: ignore[return-value]


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s picklable ``obj`` on every rank (e.g. a run directory name)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return obj
    holder: list[object] = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]  # type: ignore[return-value]
