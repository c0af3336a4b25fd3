"""A trained model behind the batching scheduler: what the HTTP routes and the web demo share.

``prepare`` turns a conversation and its images into a ``PreparedPrompt`` (the template's
token ids, the encoder's pixels, ``max_tokens`` fitted to the model's context) on the
caller's thread, so decoding and preprocessing images run in parallel; only generation is
the scheduler's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import torch
from PIL import Image

from llava_kit.data.collate import Example
from llava_kit.errors import LlavaKitError
from llava_kit.evaluators.generation import PromptItem, preprocess_image, tokenize_item
from llava_kit.serve.errors import ApiError, bad_request, from_user_error
from llava_kit.serve.images import ImagePolicy, load_image_url
from llava_kit.serve.jobs import Event, Job, PreparedPrompt
from llava_kit.serve.limits import ServeLimits
from llava_kit.serve.request import ChatCompletionRequest, Sampling
from llava_kit.serve.scheduler import BatchScheduler
from llava_kit.templates.base import ChatTemplate, Message
from llava_kit.templates.image_position import ImagePosition

if TYPE_CHECKING:
    from llava_kit.loading import OpenedModel
    from llava_kit.model.vlm import LlavaModel


class ModelService:
    def __init__(
        self,
        model: "LlavaModel",
        template: ChatTemplate,
        *,
        name: str,
        image_position: ImagePosition = "image_first",
        limits: ServeLimits | None = None,
        images: ImagePolicy | None = None,
    ) -> None:
        self.model = model.eval()
        self.template = template
        self.name = name
        self.image_position = image_position
        self.limits = limits or ServeLimits()
        self.images = images or ImagePolicy()
        # Positions past the LLM's trained range give garbage (or fail): the hard context.
        self.context: int | None = getattr(model.llm.config, "max_position_embeddings", None)
        self.scheduler = BatchScheduler(self.model, template, self.limits)

    @classmethod
    def from_opened(cls, opened: "OpenedModel", **options: object) -> "ModelService":
        """A run's model, answering in its template, named after its recipe unless told."""
        options.setdefault("name", opened.recipe.name)
        return cls(opened.model, opened.template, image_position=opened.recipe.model.image_position,
                   **options)  # type: ignore[arg-type]

    def start(self) -> None:
        self.scheduler.start()

    def close(self) -> None:
        """Start shutting down: waiting and running requests are answered 503 at once."""
        self.scheduler.close()

    def stop(self) -> None:
        self.scheduler.stop()

    def prepare_request(self, request: ChatCompletionRequest) -> PreparedPrompt:
        images = [load_image_url(ref.url, ref.where, self.limits, self.images)
                  for ref in request.images]
        return self.prepare(request.messages, images, request.sampling)

    def prepare(
        self, messages: Sequence[Message], images: Sequence[Image.Image], sampling: Sampling
    ) -> PreparedPrompt:
        item = PromptItem("request", list(messages), list(images))
        try:
            tokenized = tokenize_item(item, self.template, self.model)
            example: Example = {"id": item.id, "input_ids": tokenized.input_ids}
            if images:
                example["pixel_values"] = torch.stack(
                    [preprocess_image(self.model, image, item.id) for image in images])
        except LlavaKitError as exc:
            raise from_user_error(exc, param="messages") from None
        return PreparedPrompt(
            example=example,
            prompt_tokens=tokenized.length,
            max_tokens=self._max_tokens(tokenized.length, len(images), sampling.max_tokens),
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            stop=sampling.stop,
            seed=sampling.seed,
        )

    def submit(self, prompt: PreparedPrompt, emit: Callable[[Event], None]) -> Job:
        job = Job(prompt, emit)
        self.scheduler.submit(job)
        return job

    def _max_tokens(self, prompt_tokens: int, images: int, asked: int | None) -> int:
        limit = self.limits.max_tokens
        if asked is None:
            limit = min(limit, self.limits.default_max_tokens)
        if self.context is None:
            return min(asked or limit, limit)
        room = self.context - prompt_tokens
        visual = f", {images * self.model.num_visual_tokens} of them for {images} image(s)" if images else ""
        if room < 1:
            raise ApiError(
                400, f"messages: the prompt is {prompt_tokens} tokens{visual}; this model's "
                f"context is {self.context} tokens", param="messages",
                code="context_length_exceeded",
            )
        if asked is None:
            return min(limit, room)
        if asked > room:
            raise bad_request(
                f"max_tokens: the prompt's {prompt_tokens} tokens{visual} and the {asked} new "
                f"tokens asked for exceed this model's context of {self.context} tokens; ask "
                f"for at most {room}", param="max_tokens", code="context_length_exceeded",
            )
        return asked
