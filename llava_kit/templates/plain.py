"""The ``plain`` template of stage-1 pretraining: image, then caption, nothing else.

The instruction text of the user turn is dropped (the reference's ``preprocess_plain``):
the connector learns to map an image to its caption, so the instruction would only be
noise. Only the caption and its closing newline are trained.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

from llava_kit.constants import IMAGE_PLACEHOLDER
from llava_kit.errors import DataError
from llava_kit.templates.base import ChatTemplate, Message, Segment
from llava_kit.templates.rounds import split_rounds


class PlainTemplate(ChatTemplate):
    """Stage-1 pretraining format: '<image>' + caption + newline, the instruction dropped."""

    name: ClassVar[str] = "plain"
    stop_strings = ("\n",)
    single_turn = True

    def render(self, messages: Sequence[Message]) -> list[Segment]:
        rounds, _ = split_rounds(messages, self.name, ends_with_answer=True)
        self._require_single_turn(len(rounds))
        question, answer = rounds[0]
        return [Segment(self._images(question), False), Segment(answer + "\n", True)]

    def render_prompt(self, messages: Sequence[Message]) -> str:
        rounds, question = split_rounds(messages, self.name, ends_with_answer=False)
        assert question is not None
        self._require_single_turn(len(rounds) + 1)
        return self._images(question)

    def _require_single_turn(self, num_rounds: int) -> None:
        if num_rounds != 1:
            raise DataError(
                f"template {self.name!r} takes one user message and one answer, got "
                f"{num_rounds} rounds",
                hint="use 'plain' only for image-caption pretraining; use v1 or llava_v1 "
                "for multi-turn conversations",
            )

    def _images(self, question: str) -> str:
        # Keep one marker per image so the sample's image list still lines up.
        count = question.count(IMAGE_PLACEHOLDER)
        if count == 0:
            raise DataError(
                f"template {self.name!r} needs an {IMAGE_PLACEHOLDER} marker in the user "
                "message, found none",
                hint="'plain' is for image-caption pretraining; give each sample an image "
                "or use a chat template (v1, llava_v1) for text-only samples",
            )
        return IMAGE_PLACEHOLDER * count
