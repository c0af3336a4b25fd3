"""Rendered segments -> token ids and a token-level loss mask.

The mask comes from character offsets, not from counting tokens per piece (the
reference's approach, which drifts when a template and a tokenizer disagree and then
silently masks the whole sample). A token is trained iff its characters overlap a
trained segment; a template's trained segments start where its generation prompt ends,
so exactly the tokens a generation has to produce are trained. A token that straddles
either end of a trained segment means the tokenizer does not split where the template
does: an error naming the sample, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from transformers import PreTrainedTokenizerBase

from llava_kit.constants import IGNORE_INDEX, IMAGE_PLACEHOLDER, IMAGE_TOKEN_ID
from llava_kit.errors import DataError
from llava_kit.templates.base import Segment
from llava_kit.templates.token_offsets import encode_with_offsets

_UNTRAINED = -1
_MISMATCH_HINT = (
    "the chat template does not fit this tokenizer; pick the template the model was built "
    "for (v1/llava_v1 need a tokenizer whose eos token is '</s>'), and load the tokenizer "
    "the way the model was trained (model.llm.use_fast_tokenizer, tokenizer_legacy)"
)


@dataclass(frozen=True)
class TokenizedConversation:
    """Token ids with one IMAGE_TOKEN_ID per image, and labels (IGNORE_INDEX = not trained)."""

    input_ids: list[int]
    labels: list[int]
    num_images: int


def tokenize_conversation(
    segments: list[Segment], tokenizer: PreTrainedTokenizerBase, *, sample_id: str
) -> TokenizedConversation:
    """Tokenize a rendered conversation; labels copy the ids of trained tokens only."""
    text = "".join(segment.text for segment in segments)
    owners, trained_spans = _trained_owners(segments, len(text))
    trained_counts = [0] * len(trained_spans)
    input_ids = _bos_prefix(tokenizer)
    labels = [IGNORE_INDEX] * len(input_ids)

    for chunk in _chunks(text):
        if chunk is None:
            input_ids.append(IMAGE_TOKEN_ID)
            labels.append(IGNORE_INDEX)
            continue
        chunk_start, chunk_end = chunk
        pieces = encode_with_offsets(tokenizer, text[chunk_start:chunk_end], sample_id=sample_id)
        for token_id, (start, end) in pieces:
            # A zero-width token (inserted by a normalizer) belongs to the next character.
            first = chunk_start + start
            last = min(chunk_start + max(end, start + 1), chunk_end)
            span_owners = owners[first:last]
            trained = sorted({owner for owner in span_owners if owner != _UNTRAINED})
            if trained:
                _reject_straddling(span_owners, tokenizer, token_id, text, first, last, sample_id)
                for owner in trained:
                    trained_counts[owner] += 1
            input_ids.append(token_id)
            labels.append(token_id if trained else IGNORE_INDEX)

    _reject_untrained(trained_counts, trained_spans, text, sample_id)
    return TokenizedConversation(input_ids, labels, num_images=text.count(IMAGE_PLACEHOLDER))


def tokenize_prompt(text: str, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token ids of a generation prompt, with one IMAGE_TOKEN_ID per image marker."""
    input_ids = _bos_prefix(tokenizer)
    for chunk in _chunks(text):
        if chunk is None:
            input_ids.append(IMAGE_TOKEN_ID)
        else:
            chunk_text = text[chunk[0] : chunk[1]]
            input_ids.extend(tokenizer(chunk_text, add_special_tokens=False)["input_ids"])
    return input_ids


def _trained_owners(
    segments: list[Segment], length: int
) -> tuple[list[int], list[tuple[int, int]]]:
    """For each character, the index of the trained segment holding it (or _UNTRAINED)."""
    owners = [_UNTRAINED] * length
    spans: list[tuple[int, int]] = []
    start = 0
    for segment in segments:
        end = start + len(segment.text)
        if segment.trained:
            owners[start:end] = [len(spans)] * (end - start)
            spans.append((start, end))
        start = end
    return owners, spans


def _chunks(text: str) -> Iterator[tuple[int, int] | None]:
    """Character ranges of the text between image markers; None stands for one image."""
    position = 0
    for index, chunk in enumerate(text.split(IMAGE_PLACEHOLDER)):
        if index:
            yield None
            position += len(IMAGE_PLACEHOLDER)
        if chunk:
            yield position, position + len(chunk)
        position += len(chunk)


def adds_bos(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer puts a BOS token first by itself (as Llama's do)."""
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos]


def _bos_prefix(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    return [tokenizer.bos_token_id] if adds_bos(tokenizer) else []


def _reject_straddling(
    span_owners: list[int],
    tokenizer: PreTrainedTokenizerBase,
    token_id: int,
    text: str,
    first: int,
    last: int,
    sample_id: str,
) -> None:
    """A trained token must lie inside a trained piece. Reaching back into the prompt, it
    would be a token the generation prompt already holds part of (generation could never
    produce it); running past the end, it would teach the model to write the template's
    next role prefix."""
    if span_owners[0] == _UNTRAINED:
        problem = "starts in the prompt before a trained answer"
    elif _UNTRAINED in span_owners:
        problem = "runs past the end of a trained answer into untrained template text"
    else:
        return
    piece = tokenizer.convert_ids_to_tokens(token_id)
    raise DataError(
        f"sample {sample_id!r}: token {piece!r} (text {text[first:last]!r}) {problem}; the "
        "chat template and the tokenizer disagree on where answers start and end",
        hint=_MISMATCH_HINT,
    )


def _reject_untrained(
    counts: list[int], spans: list[tuple[int, int]], text: str, sample_id: str
) -> None:
    """Never hand back a sample whose answers are all masked (the reference's silent loss 0)."""
    if not spans:
        raise DataError(
            f"sample {sample_id!r}: the rendered conversation has no trained text, so every "
            "label would be masked",
            hint="give the sample at least one assistant answer",
        )
    for count, (start, end) in zip(counts, spans):
        if count == 0:
            raise DataError(
                f"sample {sample_id!r}: the trained text {text[start:end]!r} produced no "
                "trained tokens; the chat template and the tokenizer disagree",
                hint=_MISMATCH_HINT,
            )
