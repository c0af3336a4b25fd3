"""Running work in forked processes, their errors raised again in the caller.

A fork inherits the loaded samples and the tokenizer without copying or pickling them, and
the memory a child used to hold a whole data set goes back to the system when it exits.
A user error in a child (a bad data file, say) comes back as the same error with its hint,
so it is one screen like any other; anything else comes back with the child's traceback.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from llava_kit.errors import LlavaKitError


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def run_forked(calls: Sequence[Callable[[], None]], *, poll: Callable[[], None] = lambda: None,
               interval: float = 0.2) -> None:
    """Run each call in a forked process of its own, all at once; ``poll`` runs every
    ``interval`` seconds while they work (a progress bar). The first failure is raised,
    and the other processes are stopped."""
    context = multiprocessing.get_context("fork")
    children: list[tuple[Any, Connection]] = []
    try:
        for call in calls:
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_child, args=(call, send))
            process.start()
            send.close()
            children.append((process, receive))
        _wait_all(children, poll, interval)
    finally:
        for process, receive in children:
            if process.is_alive():
                process.terminate()
            process.join()
            receive.close()


def _child(call: Callable[[], None], send: Connection) -> None:
    try:
        call()
        send.send(None)
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
        send.send(_portable(exc))
    finally:
        send.close()


def _wait_all(children: list[tuple[Any, Connection]], poll: Callable[[], None],
              interval: float) -> None:
    pending = dict(children)
    while pending:
        ready = wait(list(pending.values()), timeout=interval)
        poll()
        for process, receive in list(pending.items()):
            if receive not in ready:
                continue
            del pending[process]
            try:
                outcome = receive.recv()
            except EOFError:  # the child ended without a word: it was killed
                process.join()
                outcome = ("died", process.exitcode)
            if outcome is not None:
                raise _rebuilt(outcome)


def _portable(exc: BaseException) -> tuple[Any, ...]:
    """The failure as plain values: an error class with its message and hint, an OSError's
    parts, or the traceback of a bug."""
    if isinstance(exc, LlavaKitError):
        return ("user", type(exc), exc.message, exc.hint)
    if isinstance(exc, OSError):
        return ("os", type(exc), exc.errno, exc.strerror, exc.filename)
    if isinstance(exc, MemoryError):
        return ("memory",)
    return ("bug", "".join(traceback.format_exception(exc)))


def _rebuilt(outcome: tuple[Any, ...]) -> BaseException:
    kind, *parts = outcome
    if kind == "user":
        error_type, message, hint = parts
        return error_type(message, hint=hint)
    if kind == "os":
        error_type, number, reason, filename = parts
        return error_type(number, reason, filename) if number is not None else error_type(reason)
    if kind == "memory":
        return MemoryError()
    if kind == "died":
        return LlavaKitError(
            f"a worker process ended with exit code {parts[0]} before it finished",
            hint="a negative code is the signal that stopped it: -9 is usually the system "
            "running out of memory; free memory or use a machine with more, then run again",
        )
    return RuntimeError(f"a worker process failed:\n{parts[0]}")
