"""The LLaVA ``conversations`` record layout, shared by ``llava_json`` and ``captions``:
the role names of its turns and the fields a record and its turns may have."""

from __future__ import annotations

from pathlib import Path

from llava_kit.data.formats.fields import UnknownField, unknown_keys
from llava_kit.data.formats.records import read_records
from llava_kit.templates.base import Role

# LLaVA files say human/gpt; user/assistant are accepted for hand-written data.
ROLE_ALIASES: dict[str, Role] = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
}
TURN_FIELDS = frozenset({"from", "value"})


def conversation_unknown_fields(
    source: Path, limit: int | None, record_fields: frozenset[str]
) -> list[UnknownField]:
    """Record keys outside ``record_fields`` and turn keys outside ``from``/``value``."""
    found: list[UnknownField] = []
    for where, record in read_records(source, limit):
        if not isinstance(record, dict):
            continue  # the reader reports it as a malformed record
        raw_id = record.get("id")
        sample_id = str(raw_id) if isinstance(raw_id, (str, int)) else None
        extra = unknown_keys(record, record_fields)
        if extra:
            found.append(UnknownField(source, sample_id, f"{where}: {extra}"))
        turns = record.get("conversations")
        for index, turn in enumerate(turns if isinstance(turns, list) else []):
            extra = unknown_keys(turn, TURN_FIELDS) if isinstance(turn, dict) else None
            if extra:
                found.append(UnknownField(
                    source, sample_id, f"{where}: turn {index} has {extra}"
                ))
    return found
