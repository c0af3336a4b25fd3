"""Reading JSON that users give us: every way it can fail is a DataError naming the file.

Besides syntax and encoding errors, a file nested thousands of levels deep makes the
decoder raise RecursionError; that too is reported as bad input, not as a crash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llava_kit.errors import DataError


def parse_json(text: str, where: str, *, hint: str | None = None, column_only: bool = False) -> Any:
    """``text`` decoded; ``where`` names it in errors (a path, ``path:line``, ``line 3``)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        position = f"column {exc.colno}" if column_only else f"line {exc.lineno}, column {exc.colno}"
        raise DataError(f"{where}: invalid JSON at {position}: {exc.msg}", hint=hint) from None
    except RecursionError:
        raise DataError(
            f"{where}: JSON nested too deeply to read (thousands of levels)", hint=hint
        ) from None


def read_text(path: Path, *, hint: str | None = None) -> str:
    """A UTF-8 text file's contents, with unreadable files reported by name."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})",
                        hint="save the file as UTF-8") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}", hint=hint) from None


def read_json(path: Path, *, hint: str | None = None) -> Any:
    """The JSON value in ``path``."""
    return parse_json(read_text(path, hint=hint), str(path), hint=hint)
