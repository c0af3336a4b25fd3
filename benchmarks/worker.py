"""A benchmark job in a process of its own, run one unit of work at a time on request.

Contenders that must not share a process (peak memory, allocator state, imported
libraries) each live in a worker; the caller alternates calls between workers, so only one
works at a time and all of them see the same machine load. A worker is a ``Timer``.
Jobs warm up while they build (workers build side by side), so no round is spent on it.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import traceback
from multiprocessing.connection import Connection
from typing import Any, Iterator

from interleave import interleave

# glibc gives large freed blocks back to the kernel, so every step pays again for fresh
# zeroed pages (about 15% of a 118M step here, and a share that moves with the machine's
# other work). Workers keep freed memory for reuse, as PyTorch's caching allocator does on
# a GPU; set in the environment a worker inherits, since glibc reads it at start.
KEEP_FREED_MEMORY = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}


class Job:
    """What a worker holds: built (and warmed up) once, then ``run`` per round; ``info``
    at any time."""

    def run(self) -> float:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        """Release what the job made (temporary folders)."""


def _serve(conn: Connection, factory: str, args: tuple[Any, ...], core: int | None) -> None:
    # The job's own output (progress lines, library chatter) would land among the caller's;
    # results and tracebacks travel through the pipe.
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    try:
        module, name = factory.split(":")
        job: Job = getattr(importlib.import_module(module), name)(*args)
        if core is not None:  # built on any core, timed on the one its peers use
            os.sched_setaffinity(0, {core})
        conn.send(("ok", None))
        while True:
            command = conn.recv()
            if command == "close":
                job.close()
                conn.send(("ok", None))
                return
            conn.send(("ok", job.run() if command == "run" else job.info()))
    except Exception:  # the caller raises it with the worker's traceback
        conn.send(("error", traceback.format_exc()))


class Worker:
    """``Worker("module:Factory", *args)``: the job built in a fresh (spawned) process.

    The process inherits the caller's environment (thread counts) and ``sys.path``. It
    starts at once and builds its job while the caller goes on (several workers build side
    by side); ``started`` waits until all of them are built before any round. With ``core`` the job runs on that
    CPU core only once built.
    """

    def __init__(self, factory: str, *args: Any, core: int | None = None) -> None:
        self.factory = factory
        for name, value in KEEP_FREED_MEMORY.items():
            os.environ.setdefault(name, value)
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        # Not a daemon: jobs may start processes of their own (the stage runner does).
        self._process = context.Process(target=_serve, args=(child, factory, args, core))
        self._process.start()
        child.close()
        self._ready = False

    def wait_until_built(self) -> None:
        if not self._ready:
            self._receive()
            self._ready = True

    def _request(self, command: str) -> Any:
        self.wait_until_built()
        self._conn.send(command)
        return self._receive()

    def _receive(self) -> Any:
        try:
            status, value = self._conn.recv()
        except EOFError:
            raise RuntimeError(f"benchmark worker {self.factory} died "
                               f"(exit code {self._process.exitcode})") from None
        if status == "error":
            raise RuntimeError(f"benchmark worker {self.factory} failed:\n{value}")
        return value

    def __call__(self) -> float:
        return float(self._request("run"))

    def info(self) -> dict[str, Any]:
        return self._request("info")

    def close(self) -> None:
        """Let the job clean up, then end the process."""
        self._request("close")
        self._process.join(timeout=60)

    def kill(self) -> None:
        """End the process at once (after a failure: it may be busy or gone)."""
        self._process.kill()
        self._process.join()


@contextlib.contextmanager
def started(**jobs: tuple[Any, ...]) -> Iterator[dict[str, Worker]]:
    """Workers started together (they build side by side): ``name=(factory, *args)``.

    All of them are timed on one core, the same for every contender: cores of a shared
    machine differ (other load, a virtual CPU's host), and a worker kept on another core
    than its peer would carry that difference into every round. Closed at the end; killed
    if anything failed, so no worker outlives its benchmark.
    """
    core = max(os.sched_getaffinity(0))
    pool: dict[str, Worker] = {}
    try:
        for name, spec in jobs.items():
            pool[name] = Worker(*spec, core=core)
        # No round starts while a peer still builds beside it (sharing caches and memory).
        for worker in pool.values():
            worker.wait_until_built()
        yield pool
    except BaseException:
        for worker in pool.values():
            worker.kill()
        raise
    for worker in pool.values():
        worker.close()


def measure(jobs: dict[str, tuple[Any, ...]], rounds: int, generations: int = 1
            ) -> tuple[dict[str, list[float]], list[dict[str, dict[str, Any]]]]:
    """``rounds`` interleaved rounds spread over ``generations`` fresh sets of workers.

    A process has luck of its own (where its memory lands, which pages are huge) that
    shifts all of its rounds alike: one set of workers would carry it into the median
    unseen, several put it into the spread. Returns every round's seconds and each
    generation's ``info`` of every job.
    """
    seconds: dict[str, list[float]] = {name: [] for name in jobs}
    infos: list[dict[str, dict[str, Any]]] = []
    for generation in range(generations):
        count = rounds // generations + (generation < rounds % generations)
        with started(**jobs) as pool:
            for name, values in interleave(pool, count, warmup=0).items():
                seconds[name] += values
            infos.append({name: worker.info() for name, worker in pool.items()})
    return seconds, infos
