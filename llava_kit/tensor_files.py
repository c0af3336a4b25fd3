"""Writing tensor files (safetensors) so that a failing disk reads as the OSError it is.

safetensors reports a full disk or a read-only folder as ``SafetensorError("... I/O error:
No space left on device (os error 28)")``, which no one would take for a disk problem, and
which names no file. Within ``writing(path)`` such an error becomes ``OSError(errno, ...,
path)``, which the command line's error boundary shows as one screen naming the file.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from safetensors import SafetensorError

_OS_ERROR = re.compile(r"os error (\d+)")


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    try:
        yield
    except SafetensorError as exc:
        match = _OS_ERROR.search(str(exc))
        if match is None:
            raise
        code = int(match.group(1))
        raise OSError(code, os.strerror(code), str(path)) from exc
