"""Checks of one loaded sample: answers, image markers, images, label mask, length budget."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from transformers import PreTrainedTokenizerBase

from llava_kit.constants import IGNORE_INDEX, IMAGE_TOKEN_ID
from llava_kit.data.sample import Sample
from llava_kit.data.sample_tokens import (
    Placement,
    TokenProblem,
    has_answer,
    sample_tokens,
    text_problems,
)
from llava_kit.templates.base import ChatTemplate
from llava_kit.templates.image_position import ImagePosition

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
    for kind, message in text_problems(sample):
        report(kind, message)
    for path in sample.images:
        check_image(path, report, unreadable)
    if budget is not None and has_answer(sample):
        check_tokens(sample, report, budget)


def check_image(path: Path, report: Report, unreadable: Mapping[Path, str]) -> None:
    if not path.is_file():
        report("missing_image", f"image {path} does not exist")
    elif path in unreadable:
        report("unreadable_image", unreadable[path])


def check_tokens(sample: Sample, report: Report, budget: TokenBudget) -> None:
    placement = Placement(budget.image_position, budget.seed)
    tokens = sample_tokens(sample, budget.template, budget.tokenizer, placement)
    if isinstance(tokens, TokenProblem):
        report(tokens.kind, tokens.message)
        return
    if budget.visual_tokens is None:
        return
    position = first_answer_position(tokens.input_ids, tokens.labels, budget.visual_tokens)
    if position >= budget.max_length:
        report("truncated", truncation_message(position, budget.visual_tokens, budget.max_length))


def truncation_message(position: int, visual_tokens: int, max_length: int) -> str:
    return (
        f"the first answer token is at position {position} (counting {visual_tokens} "
        f"positions per image) but model.max_length is {max_length}; raise model.max_length "
        "or shorten the prompt"
    )


def first_answer_position(input_ids: list[int], labels: list[int], visual_tokens: int) -> int:
    """Where the first trained token lands once each image marker becomes its visual tokens."""
    position = 0
    for token, label in zip(input_ids, labels):
        if label != IGNORE_INDEX:
            return position
        position += visual_tokens if token == IMAGE_TOKEN_ID else 1
    return position
