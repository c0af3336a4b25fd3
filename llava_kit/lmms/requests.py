"""lmms-eval's requests as llava-kit prompts: the task's text and images, laid out the way
the run's model was trained, and the task's generation settings.

A simple-interface request brings a text context and the task's images; a chat request
brings lmms-eval's chat messages. Either way the images become ``<image>`` markers placed
as ``model.image_position`` says (``random`` is read as image first, where the reference's
evaluation scripts put it), and the run's own template renders the conversation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from llava_kit.constants import IMAGE_PLACEHOLDER
from llava_kit.errors import LlavaKitError
from llava_kit.evaluators.generation import PromptItem
from llava_kit.templates.base import Message
from llava_kit.templates.image_position import ImagePosition, place_image

ImageSource = Path | Image.Image


@dataclass(frozen=True)
class GenerationSettings:
    """What a task asks of generation; requests with equal settings are answered together."""

    max_new_tokens: int
    temperature: float  # 0 is greedy decoding
    until: tuple[str, ...]  # the task's own stop strings, besides the template's


def generation_settings(
    gen_kwargs: dict[str, Any] | None, default_max_new_tokens: int, task: str
) -> GenerationSettings:
    kwargs = dict(gen_kwargs or {})
    beams = int(kwargs.get("num_beams") or 1)
    if beams != 1:
        raise LlavaKitError(
            f"task {task!r} asks for beam search (num_beams: {beams}); llava-kit's model "
            "decodes greedily or samples",
            hint="set generation_kwargs.num_beams to 1 in the task's YAML",
        )
    temperature = float(kwargs.get("temperature") or 0.0)
    if not kwargs.get("do_sample", temperature > 0):
        temperature = 0.0
    top_p = kwargs.get("top_p")
    if temperature > 0 and top_p is not None and float(top_p) < 1.0:
        raise LlavaKitError(
            f"task {task!r} samples with top_p {top_p}; llava-kit's model samples from the "
            "whole distribution",
            hint="set generation_kwargs.top_p to 1.0 (or temperature to 0) in the task's YAML",
        )
    until = kwargs.get("until") or ()
    until = (until,) if isinstance(until, str) else tuple(str(stop) for stop in until)
    return GenerationSettings(
        int(kwargs.get("max_new_tokens") or default_max_new_tokens), temperature, until
    )


def simple_prompt(
    prompt_id: str, context: str, visuals: Sequence[Any] | None, position: ImagePosition,
    where: str,
) -> PromptItem:
    """A simple-interface request: ``context`` and the images of ``doc_to_visual``.

    A context without ``<image>`` markers (most lmms-eval tasks) gets one per image, as
    lmms-eval's own LLaVA models add them."""
    images = [_image(visual, where) for visual in (visuals or [])]
    content = context
    if IMAGE_PLACEHOLDER not in content and images:
        content = "\n".join([*[IMAGE_PLACEHOLDER] * len(images), context])
    return PromptItem(prompt_id, _placed([Message("user", content)], position), images)


def chat_prompt(
    prompt_id: str, raw_messages: list[dict[str, Any]], position: ImagePosition, where: str
) -> PromptItem:
    """A chat request: lmms-eval's messages, images as ``<image>`` markers where they stand.

    A system message has no place of its own in llava-kit's templates (each brings its
    own): its text opens the first user message."""
    from lmms_eval.protocol import ChatMessages

    parsed = ChatMessages(messages=raw_messages)
    messages: list[Message] = []
    images: list[ImageSource] = []
    system: list[str] = []
    for message in parsed.messages:
        parts: list[str] = []
        for content in message.content:
            if content.type == "text":
                parts.append(content.text)
            elif content.type == "image":
                parts.append(IMAGE_PLACEHOLDER)
                images.append(_image(content.url, where))
            else:
                raise _not_an_image(content.type, where)
        text = "\n".join(parts)
        if message.role == "system":
            system.append(text)
        else:
            messages.append(Message(message.role, text))
    if system and messages and messages[0].role == "user":
        messages[0] = Message("user", "\n".join([*system, messages[0].content]))
    return PromptItem(prompt_id, _placed(messages, position), images)


def _placed(messages: list[Message], position: ImagePosition) -> list[Message]:
    fixed: ImagePosition = "image_first" if position == "random" else position
    return place_image(messages, fixed, random.Random(0))


def _image(visual: Any, where: str) -> ImageSource:
    if isinstance(visual, Image.Image):
        return visual
    if isinstance(visual, str) and Path(visual).suffix.lower() in _IMAGE_SUFFIXES:
        return Path(visual)
    kind = "video" if isinstance(visual, str) else type(visual).__name__
    raise _not_an_image(kind, where)


def _not_an_image(kind: str, where: str) -> LlavaKitError:
    return LlavaKitError(
        f"{where} gives the model a {kind} input; llava-kit models take images and text only",
        hint="leave video and audio tasks out of --tasks",
    )


_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tiff", ".webp"}
