"""The chat-template contract: conversation -> text segments marked trained or not."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal, Sequence

from transformers import PreTrainedTokenizerBase

from llava_kit.components import NoOptions, Options
from llava_kit.errors import DataError

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Segment:
    """A piece of rendered text; ``trained`` pieces are the ones the loss sees."""

    text: str
    trained: bool


class StopInAnswer(DataError):
    """An answer holds the text that closes answers in its template."""


class ChatTemplate(ABC):
    """Renders conversations into the exact text (and loss mask) a model is trained on.

    The trained segment of an answer starts exactly where ``render_prompt`` stops: every
    token a generation from that prompt has to produce is trained, nothing before it.
    """

    Options: ClassVar[type[Options]] = NoOptions
    # Text that marks the end of an assistant answer; generation stops on it.
    stop_strings: ClassVar[tuple[str, ...]] = ()
    # Text that closes an answer in the rendered conversation: an answer holding it would
    # be trained as if it ended there, teaching the model to stop mid-answer.
    answer_stops: ClassVar[tuple[str, ...]] = ()
    # True for templates that take one question and one answer (image-caption pretraining).
    single_turn: ClassVar[bool] = False

    def __init__(self, options: Options | None = None) -> None:
        self.options = options if options is not None else self.Options()

    @abstractmethod
    def render(self, messages: Sequence[Message]) -> list[Segment]:
        """The full training text of a conversation, split into trained/untrained pieces."""

    @abstractmethod
    def render_prompt(self, messages: Sequence[Message]) -> str:
        """The text a model continues to answer the last user message."""

    def for_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> ChatTemplate:
        """This template as it renders for ``tokenizer`` (every template is built through
        this; one made from the tokenizer's own chat template reads it here)."""
        return self

    def check_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        """Raise DataError if this tokenizer cannot represent the template faithfully."""

    def check_answer(self, index: int, answer: str) -> None:
        """Raise StopInAnswer if answer ``index`` (from 0) holds one of ``answer_stops``."""
        for stop in self.answer_stops:
            position = answer.find(stop)
            if position >= 0:
                name = getattr(self, "name", type(self).__name__)
                raise StopInAnswer(
                    f"answer {index + 1} contains {stop!r} (at character {position}), the text "
                    f"that ends an answer in template {name!r}; the model would learn to stop "
                    "there",
                    hint="remove or rewrite that text in the answer, or leave such samples out "
                    "with runtime.on_bad_sample: skip",
                )
