"""Checks of one loaded sample: answers, image markers, images, label mask, length budget."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from transformers import PreTrainedTokenizerBase

from llava_kit.constants import IGNORE_INDEX, IMAGE_PLACEHOLDER, IMAGE_TOKEN_ID
from llava_kit.data.dataset import ImagePosition, sample_rng
from llava_kit.data.sample import Sample
from llava_kit.errors import DataError
from llava_kit.templates.base import ChatTemplate, StopInAnswer
from llava_kit.templates.image_position import place_image
from llava_kit.templates.tokenize import tokenize_conversation

# (kind, message) for one problem of the sample being checked.
Report = Callable[[str, str], None]


@dataclass(frozen=True)
class TokenBudget:
    """What the label-mask and truncation checks need (None: text checks only)."""

    template: ChatTemplate
    tokenizer: PreTrainedTokenizerBase
    image_position: ImagePosition
    seed: int
    max_length: int
    visual_tokens: int | None  # per image; None when unknown without weights


def check_sample(
    sample: Sample, report: Report, *, unreadable: Mapping[Path, str], budget: TokenBudget | None
) -> None:
    """Report every problem of ``sample``; ``unreadable``: image -> why it cannot be decoded
    (empty when images are not decoded)."""
    answers = [m.content for m in sample.messages if m.role == "assistant"]
    if not answers:
        report("no_answer", "no assistant turn, so nothing would be trained")
    elif any(not text.strip() for text in answers):
        report("empty_answer", "an assistant answer is empty")
    markers = sum(m.content.count(IMAGE_PLACEHOLDER) for m in sample.messages)
    if markers != len(sample.images):
        report(
            "image_markers",
            f"{markers} {IMAGE_PLACEHOLDER} marker(s) for {len(sample.images)} image(s); "
            "each image needs exactly one marker",
        )
    for path in sample.images:
        _check_image(path, report, unreadable)
    if budget is not None and answers:
        _check_tokens(sample, report, budget)


def _check_image(path: Path, report: Report, unreadable: Mapping[Path, str]) -> None:
    if not path.is_file():
        report("missing_image", f"image {path} does not exist")
    elif path in unreadable:
        report("unreadable_image", unreadable[path])


def _check_tokens(sample: Sample, report: Report, budget: TokenBudget) -> None:
    messages = place_image(sample.messages, budget.image_position, sample_rng(budget.seed, sample.id))
    try:
        tokens = tokenize_conversation(
            budget.template.render(messages), budget.tokenizer, sample_id=sample.id
        )
    except StopInAnswer as exc:
        report("stop_in_answer", exc.message)
        return
    except DataError as exc:
        message = exc.message.removeprefix(f"sample {sample.id!r}: ")
        kind = "no_trained_tokens" if "no trained" in message else "template_mismatch"
        report(kind, message)
        return
    if budget.visual_tokens is None:
        return
    position = first_answer_position(tokens.input_ids, tokens.labels, budget.visual_tokens)
    if position >= budget.max_length:
        report(
            "truncated",
            f"the first answer token is at position {position} (counting "
            f"{budget.visual_tokens} positions per image) but model.max_length is "
            f"{budget.max_length}; raise model.max_length or shorten the prompt",
        )


def first_answer_position(input_ids: list[int], labels: list[int], visual_tokens: int) -> int:
    """Where the first trained token lands once each image marker becomes its visual tokens."""
    position = 0
    for token, label in zip(input_ids, labels):
        if label != IGNORE_INDEX:
            return position
        position += visual_tokens if token == IMAGE_TOKEN_ID else 1
    return position
