"""Record keys a reader ignores: the data check reports them as warnings (usually a typo)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class UnknownField:
    """Keys of one record that its data format does not read."""

    source: Path
    sample_id: str | None  # None when the record has no usable id
    message: str  # where in the record, then the keys: "record [6]: unknown field(s) 'note'"


def unknown_keys(keys: Iterable[str], known: frozenset[str]) -> str | None:
    """"unknown field(s) 'a', 'b'" for the keys not in ``known``; None when all are known."""
    extra = sorted(set(keys) - known)
    if not extra:
        return None
    return f"unknown field(s) {', '.join(map(repr, extra))}"
