"""The in-memory form of one training or evaluation example, whatever its source format."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llava_kit.templates.base import Message


@dataclass
class Sample:
    """One conversation; each ``<image>`` in its messages refers to the next of ``images``."""

    id: str
    messages: list[Message]
    images: list[Path] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    # Where the sample is in its data file ("record [3]", "line 4"), for messages that must
    # point back at it; None when the format does not say. Not part of the sample's content.
    origin: str | None = field(default=None, compare=False)
