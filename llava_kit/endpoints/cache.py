"""A JSONL cache of chat completions keyed by a hash of (model, messages, params).

Each finished request is appended and flushed at once, so a job that is interrupted
(Ctrl-C, crash, lost connection) resumes without paying for any request twice. A last
line cut short by the interruption is ignored; any other bad line is an error.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

from llava_kit.errors import DataError
from llava_kit.json_io import parse_json, read_text

_HINT = "the file is written by llava-kit; delete it to send the requests afresh"


def request_key(
    model: str, messages: Sequence[Mapping[str, str]], params: Mapping[str, Any]
) -> str:
    """A stable hash of everything that decides a completion (sorted keys, exact text)."""
    payload = json.dumps(
        {"model": model, "messages": list(messages), "params": dict(params)},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class RequestCache:
    """Completions by request key, read from and appended to one JSONL file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: dict[str, str] = self._read()

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> str | None:
        return self._entries.get(key)

    def put(self, key: str, text: str) -> None:
        line = json.dumps({"key": key, "text": text}, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
            self._entries[key] = text

    def _read(self) -> dict[str, str]:
        if not self.path.is_file():
            return {}
        entries: dict[str, str] = {}
        lines = read_text(self.path, hint=_HINT).split("\n")
        # The text after the last newline is a line the interruption cut short (or empty).
        complete, tail = lines[:-1], lines[-1]
        for number, line in enumerate(complete, start=1):
            if not line.strip():
                continue
            record = parse_json(line, f"{self.path}:{number}", hint=_HINT, column_only=True)
            if not isinstance(record, dict) or "key" not in record or "text" not in record:
                raise DataError(f"{self.path}:{number}: not a request-cache record "
                                "({\"key\": ..., \"text\": ...})", hint=_HINT)
            entries[str(record["key"])] = str(record["text"])
        if tail.strip():
            # Drop the partial line so the next append starts on a line of its own.
            self.path.write_text("".join(line + "\n" for line in complete), encoding="utf-8")
        return entries
