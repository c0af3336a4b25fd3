"""One loaded sample checked and tokenized: what is wrong with its text, and its ids and
label mask under a chat template (or why it has none).

Training, the token store and the data check all go through these functions, so the
tokens a check approves are exactly the tokens a stage trains on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from llava_kit.constants import IMAGE_PLACEHOLDER
from llava_kit.data.sample import Sample
from llava_kit.errors import DataError
from llava_kit.templates.base import ChatTemplate, StopInAnswer
from llava_kit.templates.image_position import ImagePosition, place_image
from llava_kit.templates.tokenize import TokenizedConversation, tokenize_conversation


@dataclass(frozen=True)
class Placement:
    """Where the first turn's image goes; ``seed`` draws it per sample for ``random``."""

    image_position: ImagePosition = "image_first"
    seed: int = 0


@dataclass(frozen=True)
class TokenProblem:
    """Why a sample has no tokens: its data-check kind and line, and what training raises."""

    kind: str  # stop_in_answer | no_trained_tokens | template_mismatch
    message: str  # as the data check lists it, without the "sample 'x': " prefix
    error: DataError


def sample_rng(seed: int, sample_id: str) -> random.Random:
    """A per-sample generator, so random choices do not depend on worker order."""
    return random.Random(f"{seed}:{sample_id}")


def has_answer(sample: Sample) -> bool:
    return any(message.role == "assistant" for message in sample.messages)


def text_problems(sample: Sample) -> list[tuple[str, str]]:
    """(kind, message) for the sample's answers and image markers, in the data check's order."""
    answers = [m.content for m in sample.messages if m.role == "assistant"]
    found: list[tuple[str, str]] = []
    if not answers:
        found.append(("no_answer", "no assistant turn, so nothing would be trained"))
    elif any(not text.strip() for text in answers):
        found.append(("empty_answer", "an assistant answer is empty"))
    markers = sum(m.content.count(IMAGE_PLACEHOLDER) for m in sample.messages)
    if markers != len(sample.images):
        found.append((
            "image_markers",
            f"{markers} {IMAGE_PLACEHOLDER} marker(s) for {len(sample.images)} image(s); "
            "each image needs exactly one marker",
        ))
    return found


def sample_tokens(
    sample: Sample, template: ChatTemplate, tokenizer: PreTrainedTokenizerBase,
    placement: Placement,
) -> TokenizedConversation | TokenProblem:
    """The sample's ids and labels, or the problem that leaves it without any."""
    rng = sample_rng(placement.seed, sample.id)
    messages = place_image(sample.messages, placement.image_position, rng)
    try:
        segments = template.render(messages)
    except StopInAnswer as exc:
        return TokenProblem("stop_in_answer", exc.message, _named(sample.id, exc))
    except DataError as exc:
        return _problem(sample.id, exc.message, _named(sample.id, exc))
    try:
        return tokenize_conversation(segments, tokenizer, sample_id=sample.id)
    except DataError as exc:
        return _problem(sample.id, exc.message, exc)


def _named(sample_id: str, exc: DataError) -> DataError:
    return DataError(f"sample {sample_id!r}: {exc.message}", hint=exc.hint)


def _problem(sample_id: str, text: str, error: DataError) -> TokenProblem:
    message = text.removeprefix(f"sample {sample_id!r}: ")
    kind = "no_trained_tokens" if "no trained" in message else "template_mismatch"
    return TokenProblem(kind, message, error)
