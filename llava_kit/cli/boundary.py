"""The error boundary of every command: user errors as one screen, and errors from the
machine a command runs on (disk, permissions, memory) shown as user errors too.

An ``OSError`` that reaches the top of a command comes from a path, a disk or a
permission the user controls, not from a bug: it is shown as one screen naming the file
and what to do. ``--debug`` (or ``LLAVA_KIT_DEBUG=1``, which launched processes inherit)
shows the traceback instead.
"""

from __future__ import annotations

import errno
import os

from rich.console import Console
from rich.markup import escape

from llava_kit.errors import LlavaKitError

DEBUG_ENV = "LLAVA_KIT_DEBUG"

_HINTS = {
    errno.ENOSPC: "free space on that disk, or write elsewhere (--output-dir, runtime.feature_cache, "
                  "runtime.token_store)",
    errno.EDQUOT: "free space within your quota, or write elsewhere",
    errno.EACCES: "this user may not write or read there: choose another place or fix the permissions",
    errno.EPERM: "this user may not write or read there: choose another place or fix the permissions",
    errno.EROFS: "that file system is read-only: choose a writable place",
    errno.ENOTDIR: "a part of that path is a file, not a folder",
    errno.EISDIR: "that path is a folder; give a file",
    errno.ENOENT: "check the path",
}


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def as_user_error(exc: BaseException) -> LlavaKitError | None:
    """The one-screen error for an environment failure, or None for anything else."""
    if isinstance(exc, MemoryError):
        return LlavaKitError(
            "ran out of memory",
            hint="use smaller batches (stages.<s>.batch.micro_size), a shorter model.max_length, "
            "or a machine with more memory",
        )
    if not isinstance(exc, OSError) or isinstance(exc, ConnectionError | TimeoutError):
        return None
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = f": {exc.filename}" if exc.filename else ""
    if exc.filename2:
        where += f" -> {exc.filename2}"
    return LlavaKitError(
        f"{reason}{where}",
        hint=_HINTS.get(exc.errno or -1, "check the path and the disk")
        + f" (set {DEBUG_ENV}=1 or pass --debug for the traceback)",
    )


err_console = Console(stderr=True)


def report_error(exc: LlavaKitError) -> None:
    """One screen: the error, and what to do about it."""
    # Messages quote user input (paths, --set values): never read them as rich markup.
    err_console.print(f"[bold red]error:[/bold red] {escape(exc.message)}", highlight=False)
    if exc.hint:
        err_console.print(f"[yellow]hint:[/yellow] {escape(exc.hint)}", highlight=False)
