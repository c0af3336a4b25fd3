"""Templates built from a header and question/answer rounds (every built-in but ``plain``).

Text layout: ``header`` + for each round
``{user prefix}{question}{user_suffix}{assistant_role}{answer_prefix}{answer}{answer_suffix}``,
where the first round may have its own user prefix. The generation prompt stops at
``assistant_role``, so ``{answer_prefix}{answer}{answer_suffix}`` is trained: whatever
the model has to write after the prompt, including the space before an answer that a
SentencePiece tokenizer gives a token of its own (``ASSISTANT: 42`` -> ``▁ 4 2``).
"""

from __future__ import annotations

from typing import ClassVar, Sequence

from llava_kit.errors import DataError
from llava_kit.templates.base import ChatTemplate, Message, Segment

_CLOSING = "training needs user/assistant pairs ending with an assistant answer"
_OPEN = "a prompt needs user/assistant pairs followed by one user message"


def split_rounds(
    messages: Sequence[Message], template_name: str, *, ends_with_answer: bool
) -> tuple[list[tuple[str, str]], str | None]:
    """Check user/assistant alternation; return the (question, answer) rounds and the
    trailing unanswered question (None when the conversation ends with an answer)."""
    rule = _CLOSING if ends_with_answer else _OPEN
    if not messages:
        raise DataError(f"template {template_name!r}: the conversation is empty; {rule}")
    for index, message in enumerate(messages):
        expected = "user" if index % 2 == 0 else "assistant"
        if message.role != expected:
            raise DataError(
                f"template {template_name!r}: messages[{index}] has role {message.role!r} "
                f"where {expected!r} was expected; messages must alternate user/assistant, "
                "starting with user"
            )
    last_role = messages[-1].role
    if ends_with_answer != (last_role == "assistant"):
        raise DataError(
            f"template {template_name!r}: the last message has role {last_role!r}; {rule}"
        )
    rounds = [
        (messages[i].content, messages[i + 1].content) for i in range(0, len(messages) - 1, 2)
    ]
    pending = None if ends_with_answer else messages[-1].content
    return rounds, pending


class RoundTemplate(ChatTemplate):
    """Shared rendering of header + rounds; subclasses only name their strings."""

    name: ClassVar[str]
    header: ClassVar[str]
    first_user_prefix: ClassVar[str]
    user_prefix: ClassVar[str]
    user_suffix: ClassVar[str]
    assistant_role: ClassVar[str]
    answer_prefix: ClassVar[str] = " "
    answer_suffix: ClassVar[str]

    def _question_text(self, round_index: int, question: str) -> str:
        prefix = self.first_user_prefix if round_index == 0 else self.user_prefix
        return prefix + question + self.user_suffix + self.assistant_role

    def _answer_text(self, answer: str) -> str:
        return self.answer_prefix + answer + self.answer_suffix

    def render(self, messages: Sequence[Message]) -> list[Segment]:
        rounds, _ = split_rounds(messages, self.name, ends_with_answer=True)
        untrained = self.header
        segments: list[Segment] = []
        for index, (question, answer) in enumerate(rounds):
            self.check_answer(index, answer)
            segments.append(Segment(untrained + self._question_text(index, question), False))
            segments.append(Segment(self._answer_text(answer), True))
            untrained = ""
        return segments

    def render_prompt(self, messages: Sequence[Message]) -> str:
        rounds, question = split_rounds(messages, self.name, ends_with_answer=False)
        assert question is not None
        text = self.header
        for index, (asked, answer) in enumerate(rounds):
            text += self._question_text(index, asked) + self._answer_text(answer)
        return text + self._question_text(len(rounds), question)
