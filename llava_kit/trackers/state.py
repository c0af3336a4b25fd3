"""What a tracker keeps between the starts of one run (the tool's run id), one small JSON
file per tracker in the run directory, so that ``--resume`` reopens the same tool run."""

from __future__ import annotations

import json
import logging
from typing import Any

from llava_kit.atomic_files import atomic_write_text
from llava_kit.train.run_dir import RunDir

log = logging.getLogger("llava_kit")


def read_state(layout: RunDir, name: str) -> dict[str, Any]:
    """The state tracker ``name`` saved; empty before its first start (or if unreadable)."""
    path = layout.tracker_state(name)
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        log.warning("%s cannot be read (%s); tracker %s starts a new run", path, exc, name)
        return {}
    return state if isinstance(state, dict) else {}


def write_state(layout: RunDir, name: str, state: dict[str, Any]) -> None:
    """Keep ``state``; an empty one forgets what was kept (the next start is a new run)."""
    path = layout.tracker_state(name)
    if state:
        atomic_write_text(path, json.dumps(state, indent=2) + "\n")
    else:
        path.unlink(missing_ok=True)
