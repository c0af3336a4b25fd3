"""``hf_chat``: the LLM's own chat template (the tokenizer's Jinja ``chat_template``).

The trained span of every answer is computed from renderings of the template itself: the
conversation up to a user turn rendered with the generation prompt must be a prefix of the
whole conversation's text, and what follows it, the answer and the end-of-turn marker the
template writes after answers, is trained. Whitespace the template writes after that marker
(ChatML's newline) belongs to the next turn's context and is not. The end-of-turn marker is
read off a probe rendering and becomes the stop string, so generation stops where training
taught the model to.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

from transformers import PreTrainedTokenizerBase

from llava_kit.components import Options
from llava_kit.errors import DataError
from llava_kit.templates.base import ChatTemplate, Message, Segment
from llava_kit.templates.rounds import split_rounds
from llava_kit.templates.tokenize import adds_bos

_PROBE_ANSWER = "Probe answer 7."
_HINT = ("use a tokenizer whose chat template renders earlier turns the same whatever follows "
         "(most instruct models), or a built-in template (v1, llava_v1, chatml_direct, ...)")


class HfChatOptions(Options):
    system: str | None = None  # a system message before the first user turn


class HfChatTemplate(ChatTemplate):
    """Renders with the tokenizer's chat template; ``for_tokenizer`` binds it to one."""

    name: ClassVar[str] = "hf_chat"
    Options = HfChatOptions

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        self._tokenizer: PreTrainedTokenizerBase | None = None

    def for_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> HfChatTemplate:
        if not getattr(tokenizer, "chat_template", None):
            raise DataError(
                f"template 'hf_chat' renders with the tokenizer's own chat template, and the "
                f"tokenizer {getattr(tokenizer, 'name_or_path', '') or '(unnamed)'} has none",
                hint="use the tokenizer of an instruct/chat model (its tokenizer_config.json or "
                "chat_template.jinja holds the template), or a built-in template such as v1",
            )
        bound = HfChatTemplate(self.options)
        bound._tokenizer = tokenizer
        end = bound._end_of_turn()
        bound.stop_strings = (end,)  # type: ignore[misc]
        bound.answer_stops = (end,)  # type: ignore[misc]
        return bound

    def render(self, messages: Sequence[Message]) -> list[Segment]:
        rounds, _ = split_rounds(messages, self.name, ends_with_answer=True)
        full = self._text(messages, generation_prompt=False)
        (end,) = self.stop_strings
        segments: list[Segment] = []
        done = 0
        for index, (_, answer) in enumerate(rounds):
            self.check_answer(index, answer)
            prompt = self._text(messages[: 2 * index + 1], generation_prompt=True)
            if not full.startswith(prompt) or len(prompt) < done:
                raise DataError(
                    f"template 'hf_chat': the tokenizer's chat template renders the turns before "
                    f"answer {index + 1} differently once that answer follows, so the generation "
                    "prompt is not where the answer starts in training text",
                    hint=_HINT,
                )
            close = full.find(end, len(prompt))
            if close < 0:
                raise DataError(f"template 'hf_chat': answer {index + 1} is not followed by the "
                                f"end-of-turn marker {end!r} its chat template writes", hint=_HINT)
            segments.append(Segment(full[done:len(prompt)], False))
            done = close + len(end)
            segments.append(Segment(full[len(prompt):done], True))
        if done < len(full):
            segments.append(Segment(full[done:], False))
        return [segment for segment in segments if segment.text]

    def render_prompt(self, messages: Sequence[Message]) -> str:
        split_rounds(messages, self.name, ends_with_answer=False)
        return self._text(messages, generation_prompt=True)

    def _text(self, messages: Sequence[Message], *, generation_prompt: bool) -> str:
        tokenizer = self._bound()
        conversation: list[dict[str, Any]] = [{"role": m.role, "content": m.content} for m in messages]
        if self.options.system:  # type: ignore[attr-defined]
            conversation.insert(0, {"role": "system", "content": self.options.system})  # type: ignore[attr-defined]
        try:
            text = tokenizer.apply_chat_template(
                conversation, tokenize=False, add_generation_prompt=generation_prompt)
        except Exception as exc:  # noqa: BLE001 - a Jinja error of the model's own template
            raise DataError(f"template 'hf_chat': the tokenizer's chat template failed: {exc}",
                            hint=_HINT) from None
        # Tokenizing adds the BOS token itself where the tokenizer does (as Llama's do).
        bos = tokenizer.bos_token
        if bos and text.startswith(bos) and adds_bos(tokenizer):
            text = text[len(bos):]
        return str(text)

    def _end_of_turn(self) -> str:
        """What the chat template writes right after an answer (without trailing whitespace)."""
        probe = [Message("user", "Probe question?"), Message("assistant", _PROBE_ANSWER)]
        full = self._text(probe, generation_prompt=False)
        prompt = self._text(probe[:1], generation_prompt=True)
        at = full.find(_PROBE_ANSWER, len(prompt)) if full.startswith(prompt) else -1
        end = full[at + len(_PROBE_ANSWER):].rstrip() if at >= 0 else ""
        if not end:
            raise DataError(
                "template 'hf_chat': the tokenizer's chat template writes no end-of-turn marker "
                "after an answer (or no answer where the generation prompt ends), so a model "
                "trained on it would never learn to stop",
                hint=_HINT,
            )
        return end

    def _bound(self) -> PreTrainedTokenizerBase:
        if self._tokenizer is None:
            raise RuntimeError("hf_chat renders only once bound with for_tokenizer")
        return self._tokenizer
