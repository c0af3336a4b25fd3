"""Batched answer generation for evaluators and chat: prompts in, answer texts out.

Prompts are sorted by length before batching so that a batch holds prompts of similar
length and carries few pad tokens; they are left-padded (the new tokens of every row then
start at the same column) and decoded greedily by default. Answers come back keyed by the
prompt ids, in the caller's order, so batching never changes what a caller sees: with
greedy decoding, batch size 1 and batch size N give the same texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal, NamedTuple, Sequence, get_args

import torch
from PIL import Image
from rich.progress import Progress

from llava_kit.constants import IMAGE_TOKEN_ID
from llava_kit.data.collate import Collator, Example
from llava_kit.data.images import load_image
from llava_kit.errors import DataError, ModelError
from llava_kit.progress_bars import counting_bar
from llava_kit.templates.base import ChatTemplate, Message
from llava_kit.templates.tokenize import tokenize_prompt

if TYPE_CHECKING:
    from llava_kit.model.vlm import LlavaModel

ImageOverride = Literal["blank"]
# Mid-grey: carries no content, whatever the encoder's normalisation.
BLANK_COLOUR = (128, 128, 128)


class PromptItem(NamedTuple):
    """One question to answer: the conversation so far (ending with a user message) and
    the images its ``<image>`` markers refer to, in order (files, or images in memory)."""

    id: str
    messages: Sequence[Message]
    images: Sequence[Path | Image.Image] = ()


@dataclass(frozen=True)
class TokenizedPrompt:
    """A prompt's token ids, one ``IMAGE_TOKEN_ID`` per image."""

    item: PromptItem
    input_ids: list[int]
    length: int  # after each image marker is expanded to the visual tokens


def generate_answers(
    model: "LlavaModel",
    template: ChatTemplate,
    prompts: Sequence[PromptItem],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    image_override: ImageOverride | None = None,
    progress: bool = True,
) -> dict[str, str]:
    """The model's answer to each prompt, keyed by prompt id, in the order of ``prompts``.

    Each answer is the decoded new text cut at the template's first stop string and
    stripped. ``image_override="blank"`` replaces every image by a mid-grey one of the same
    size (to measure how much the answers depend on the images). The model runs in eval
    mode and every submodule gets its previous mode back afterwards.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if image_override is not None and image_override not in get_args(ImageOverride):
        raise ValueError(
            f"image_override must be one of {get_args(ImageOverride)} or None, "
            f"got {image_override!r}"
        )
    _check_unique_ids(prompts)
    tokenizer = model.tokenizer
    if tokenizer.pad_token_id is None:
        raise ModelError(
            "the tokenizer has no pad token, so prompts cannot be batched",
            hint="load the LLM through hf_causal_lm, which sets one (or set its pad_token option)",
        )
    tokenized = [tokenize_item(item, template, model) for item in prompts]
    # Longest first: an out-of-memory batch shows up at the start, not after an hour.
    ordered = sorted(tokenized, key=lambda entry: entry.length, reverse=True)
    answers: dict[str, str] = {}
    # Per module: training keeps frozen parts in eval mode while the rest trains.
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with _progress_bar(progress) as bar:
            task = bar.add_task("generating", total=len(ordered))
            for batch in _batches(ordered, batch_size):
                texts = _generate_batch(
                    model, template, batch, max_new_tokens, temperature, image_override
                )
                answers.update(zip((entry.item.id for entry in batch), texts))
                bar.advance(task, len(batch))
    finally:
        for module, training in modes.items():
            module.training = training
    return {item.id: answers[item.id] for item in prompts}


def cut_at_stop(text: str, stop_strings: Sequence[str]) -> str:
    """``text`` up to the earliest stop string, stripped."""
    end = min((i for i in (text.find(s) for s in stop_strings if s) if i >= 0), default=len(text))
    return text[:end].strip()


def blank_like(image: Image.Image) -> Image.Image:
    """A mid-grey RGB image of the same size."""
    return Image.new("RGB", image.size, BLANK_COLOUR)


def _check_unique_ids(prompts: Sequence[PromptItem]) -> None:
    seen: set[str] = set()
    for item in prompts:
        if item.id in seen:
            raise DataError(
                f"prompt id {item.id!r} appears more than once",
                hint="give every prompt its own id; answers are returned keyed by id",
            )
        seen.add(item.id)


def tokenize_item(item: PromptItem, template: ChatTemplate, model: "LlavaModel") -> TokenizedPrompt:
    """The rendered prompt's token ids; DataError unless it has one marker per image."""
    input_ids = tokenize_prompt(template.render_prompt(item.messages), model.tokenizer)
    markers = input_ids.count(IMAGE_TOKEN_ID)
    if markers != len(item.images):
        raise DataError(
            f"prompt {item.id!r}: the rendered prompt has {markers} <image> marker(s) but "
            f"{len(item.images)} image(s) were given",
            hint="put exactly one <image> in the messages for each image of the prompt",
        )
    return TokenizedPrompt(item, input_ids, expanded_length(input_ids, model))


def _batches(entries: list[TokenizedPrompt], size: int) -> Iterator[list[TokenizedPrompt]]:
    for start in range(0, len(entries), size):
        yield entries[start : start + size]


def _generate_batch(
    model: "LlavaModel",
    template: ChatTemplate,
    batch: list[TokenizedPrompt],
    max_new_tokens: int,
    temperature: float,
    image_override: ImageOverride | None,
) -> list[str]:
    # Images are loaded per batch: a whole test split of preprocessed images would not fit.
    examples: list[Example] = []
    for entry in batch:
        example: Example = {"id": entry.item.id, "input_ids": entry.input_ids}
        if entry.item.images:
            example["pixel_values"] = torch.stack(
                [preprocess_image(model, image, entry.item.id, image_override)
                 for image in entry.item.images]
            )
        examples.append(example)
    new_tokens = generate_new_tokens(
        model, template, examples, max_new_tokens=max_new_tokens, temperature=temperature
    )
    texts = model.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    return [cut_at_stop(text, template.stop_strings) for text in texts]


def generate_new_tokens(
    model: "LlavaModel",
    template: ChatTemplate,
    examples: Sequence[Example],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float | None = None,
    **generate_kwargs: Any,
) -> torch.Tensor:
    """New token ids [B, <= max_new_tokens] of one left-padded batch of prompts (token ids
    with one ``IMAGE_TOKEN_ID`` per image, and their preprocessed images).

    The one call into the model that evaluators and the server share, so that a served
    greedy answer is the evaluators' answer. ``generate_kwargs`` go to ``generate``
    (a server's per-row stopping criteria).
    """
    collate = Collator(
        num_visual_tokens=model.num_visual_tokens,
        pad_token_id=model.tokenizer.pad_token_id,
        # Never truncate a prompt: cutting its end would remove the assistant prefix.
        max_length=max(expanded_length(example["input_ids"], model) for example in examples),
        padding_side="left",
    )
    collated = collate(examples)
    device = model.device
    pixel_values = collated["pixel_values"]
    return model.generate(
        collated["input_ids"].to(device),
        collated["attention_mask"].to(device),
        pixel_values.to(device) if pixel_values is not None else None,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        stop_strings=tuple(template.stop_strings),
        **generate_kwargs,
    )


def expanded_length(input_ids: Sequence[int], model: "LlavaModel") -> int:
    """A prompt's length once each image marker is expanded to the visual tokens."""
    return len(input_ids) + input_ids.count(IMAGE_TOKEN_ID) * (model.num_visual_tokens - 1)


def preprocess_image(
    model: "LlavaModel", source: Path | Image.Image, prompt_id: str,
    image_override: ImageOverride | None = None,
) -> torch.Tensor:
    """One prompt image as the model's encoder takes it; file errors name the prompt."""
    if isinstance(source, Image.Image):
        image = source.convert("RGB")  # decoded by the caller (lmms-eval's tasks)
    else:
        image = load_image(Path(source), sample_id=prompt_id)
    if image_override == "blank":
        image = blank_like(image)
    return model.encoder.preprocess(image)


def _progress_bar(enabled: bool) -> Progress:
    return counting_bar("prompts", enabled=enabled)
