"""A chat-completions request body: read, checked and turned into a conversation.

Everything a client sends is checked here, before any image is decoded or token
generated: the JSON itself, every field (unknown ones are refused by name, so a typo is
not silently ignored), the sampling settings and the limits on them, and the messages.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llava_kit.constants import IMAGE_PLACEHOLDER
from llava_kit.errors import DataError
from llava_kit.json_io import parse_json
from llava_kit.serve.errors import ApiError, bad_request
from llava_kit.serve.limits import ServeLimits
from llava_kit.templates.base import Message, Role
from llava_kit.templates.image_position import ImagePosition, place_image

# OpenAI fields this server cannot honour; a neutral value (null, 0, false) is accepted.
UNSUPPORTED = (
    "frequency_penalty", "presence_penalty", "logit_bias", "logprobs", "top_logprobs",
    "tools", "tool_choice", "parallel_tool_calls", "functions", "function_call",
    "response_format", "modalities", "audio", "prediction", "reasoning_effort",
    "service_tier", "store", "metadata", "web_search_options",
)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class CompletionParams(BaseModel):
    """The body's fields besides ``messages`` (checked on their own, for clearer errors)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[Any] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    # The OpenAI API's defaults: sampling at temperature 1 unless the client asks for 0.
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None


@dataclass(frozen=True)
class Sampling:
    """How one request is decoded; ``max_tokens`` None means "as many as fit"."""

    max_tokens: int | None
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    seed: int | None


@dataclass(frozen=True)
class ImageRef:
    url: str
    where: str  # e.g. messages[0].content[1].image_url.url


@dataclass(frozen=True)
class ChatCompletionRequest:
    model: str
    messages: list[Message]  # in the template's roles, with <image> markers placed
    images: list[ImageRef]  # one per marker, in order
    sampling: Sampling
    stream: bool
    include_usage: bool


def parse_request(body: bytes, limits: ServeLimits, image_position: ImagePosition) -> ChatCompletionRequest:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"the request body is not UTF-8 text ({exc.reason} at byte {exc.start})")
    try:
        raw = parse_json(text, "the request body")
    except DataError as exc:
        raise bad_request(exc.message) from None
    if not isinstance(raw, dict):
        raise bad_request("the request body must be a JSON object")
    _refuse_unsupported(raw)
    try:
        params = CompletionParams.model_validate(raw)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    if params.n != 1:
        raise bad_request(f"n: only 1 completion per request is supported, got {params.n}",
                          param="n")
    messages, images = _conversation(params.messages, image_position)
    if len(images) > limits.max_images:
        raise bad_request(f"messages: {len(images)} images, more than the {limits.max_images} "
                          "this server takes in one request", param="messages")
    max_tokens = params.max_completion_tokens or params.max_tokens
    if max_tokens is not None and max_tokens > limits.max_tokens:
        raise bad_request(f"max_tokens: {max_tokens} is more than the {limits.max_tokens} new "
                          "tokens this server generates per request", param="max_tokens")
    sampling = Sampling(max_tokens, params.temperature, params.top_p,
                        _stop_strings(params.stop, limits), params.seed)
    include_usage = params.stream_options is not None and params.stream_options.include_usage
    return ChatCompletionRequest(params.model, messages, images, sampling, params.stream,
                                 include_usage)


def _refuse_unsupported(raw: dict[str, Any]) -> None:
    for name in UNSUPPORTED:
        if raw.get(name) not in (None, 0, False, [], {}):
            raise bad_request(f"{name}: not supported by llava-kit serve", param=name)
        raw.pop(name, None)


def _validation_error(exc: ValidationError) -> ApiError:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return bad_request(f"unknown field {where!r}", param=where)
    if error["type"] == "missing":
        return bad_request(f"{where}: required", param=where)
    return bad_request(f"{where}: {error['msg']}", param=where)


def _stop_strings(stop: str | list[str] | None, limits: ServeLimits) -> tuple[str, ...]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > limits.max_stop_strings:
        raise bad_request(f"stop: at most {limits.max_stop_strings} stop strings, got "
                          f"{len(stops)}", param="stop")
    for text in stops:
        if not text or len(text) > limits.max_stop_chars:
            raise bad_request(f"stop: each stop string must have 1 to {limits.max_stop_chars} "
                              "characters", param="stop")
    return tuple(stops)


def _conversation(
    raw_messages: list[Any], image_position: ImagePosition
) -> tuple[list[Message], list[ImageRef]]:
    """The template's messages: system text opens the first user turn (the templates have
    a fixed header of their own), each user turn's images placed as training placed them."""
    system: list[str] = []
    messages: list[Message] = []
    images: list[ImageRef] = []
    for index, raw in enumerate(raw_messages):
        where = f"messages[{index}]"
        role, texts, refs = _message(raw, where)
        if role == "system":
            if messages:
                raise bad_request(f"{where}: system messages must come before the first user "
                                  "message", param="messages")
            if refs:
                raise bad_request(f"{where}: a system message cannot hold images",
                                  param="messages")
            system.append(texts)
            continue
        expected = "user" if len(messages) % 2 == 0 else "assistant"
        if role != expected:
            raise bad_request(f"{where}: role {role!r} where {expected!r} was expected; after "
                              "any system messages the turns must alternate user, assistant, "
                              "..., user", param="messages")
        if role == "assistant" and refs:
            raise bad_request(f"{where}: an assistant message cannot hold images",
                              param="messages")
        if role == "user" and not messages and system:
            texts = "\n\n".join([*system, texts])
        messages.append(with_image_markers(role, texts, len(refs), image_position))
        images.extend(refs)
    if not messages or messages[-1].role != "user":
        raise bad_request("messages: the conversation must end with a user message",
                          param="messages")
    return messages, images


def _message(raw: Any, where: str) -> tuple[str, str, list[ImageRef]]:
    if not isinstance(raw, dict):
        raise bad_request(f"{where}: a message must be an object with role and content",
                          param="messages")
    unknown = sorted(set(raw) - {"role", "content", "name"})
    if unknown:
        raise bad_request(f"{where}: unknown field {unknown[0]!r}", param="messages")
    role = raw.get("role")
    if role not in ("system", "user", "assistant"):
        raise bad_request(f"{where}.role: {role!r} is not one of 'system', 'user', 'assistant'",
                          param="messages")
    content = raw.get("content")
    if isinstance(content, str):
        return role, _checked_text(content, f"{where}.content"), []
    if not isinstance(content, list):
        raise bad_request(f"{where}.content: a string or a list of text and image_url parts",
                          param="messages")
    texts: list[str] = []
    refs: list[ImageRef] = []
    for number, part in enumerate(content):
        part_where = f"{where}.content[{number}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str) and set(part) <= {"type", "text"}:
            texts.append(_checked_text(part["text"], f"{part_where}.text"))
        elif kind == "image_url":
            refs.append(_image_ref(part, part_where))
        else:
            raise bad_request(f"{part_where}: not a text part ({{'type': 'text', 'text': ...}}) "
                              "or an image_url part ({'type': 'image_url', 'image_url': "
                              "{'url': ...}})", param="messages")
    return role, "".join(texts), refs


def _image_ref(part: dict[str, Any], where: str) -> ImageRef:
    image_url = part.get("image_url")
    if isinstance(image_url, str):  # some clients send the URL itself
        image_url = {"url": image_url}
    if (set(part) > {"type", "image_url"} or not isinstance(image_url, dict)
            or not isinstance(image_url.get("url"), str) or set(image_url) - {"url", "detail"}):
        raise bad_request(f"{where}: an image_url part is {{'type': 'image_url', 'image_url': "
                          "{'url': 'data:image/png;base64,...'}}", param="messages")
    return ImageRef(image_url["url"], f"{where}.image_url.url")


def _checked_text(text: str, where: str) -> str:
    if IMAGE_PLACEHOLDER in text:
        raise bad_request(f"{where}: the text holds {IMAGE_PLACEHOLDER!r}; send images as "
                          "image_url parts, which place the marker themselves", param="messages")
    return text


def with_image_markers(role: Role, text: str, count: int, image_position: ImagePosition) -> Message:
    """A turn with ``count`` images, their markers placed as training placed them."""
    if not count:
        return Message(role, text)
    # "random" cannot be repeated request by request; the reference's order is used.
    position: ImagePosition = "question_first" if image_position == "question_first" else "image_first"
    placed = place_image([Message("user", IMAGE_PLACEHOLDER * count + text)], position, random.Random(0))
    return placed[0]

