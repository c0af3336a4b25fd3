"""One request on its way through the scheduler, and the events it sends back.

The scheduler's thread calls ``emit`` with each event; the caller decides how they cross
into its world (an asyncio queue for the HTTP routes, a plain queue for the web demo).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Callable

from llava_kit.data.collate import Example
from llava_kit.serve.errors import ApiError


@dataclass(frozen=True)
class TextDelta:
    """The next piece of the answer; the pieces add up to ``Finished.text``."""

    text: str


@dataclass(frozen=True)
class Finished:
    text: str
    finish_reason: str  # "stop" (a stop string or end of sequence) or "length"
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Failed:
    error: ApiError


Event = TextDelta | Finished | Failed

_ids = itertools.count()


@dataclass(frozen=True)
class PreparedPrompt:
    """A request ready for a batch: token ids and images, and how to decode it."""

    example: Example  # input_ids (one IMAGE_TOKEN_ID per image) and pixel_values
    prompt_tokens: int  # visual tokens included
    max_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    seed: int | None


class Job:
    def __init__(self, prompt: PreparedPrompt, emit: Callable[[Event], None]) -> None:
        self.number = next(_ids)
        self.prompt = prompt
        self.emit = emit
        self._cancelled = threading.Event()

    @property
    def batch_key(self) -> tuple[object, ...]:
        """Jobs with the same key can share one generate call."""
        prompt = self.prompt
        if prompt.temperature == 0:
            return ("greedy",)
        if prompt.seed is not None:
            # A seeded sample is repeatable only alone: in a batch, rows share the draws.
            return ("seeded", self.number)
        return ("sample", prompt.temperature, prompt.top_p)

    def cancel(self) -> None:
        """The client is gone: drop the job from the queue, or end its row at the next token."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()
