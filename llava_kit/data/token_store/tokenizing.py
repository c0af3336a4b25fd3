"""Tokenizing one contiguous part of a stage's samples into raw part files.

Each build process takes one part; its ids and trained-token flags go to two raw files
(concatenated into the store's columns afterwards), its per-sample numbers to one small
array, and its samples without tokens to a JSON list.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers import PreTrainedTokenizerBase

from llava_kit.constants import IGNORE_INDEX, IMAGE_TOKEN_ID
from llava_kit.data.sample import Sample
from llava_kit.data.sample_tokens import Placement, TokenProblem, sample_tokens
from llava_kit.templates.base import ChatTemplate

IDS_DTYPE = np.int32
# Per sample: token count, then the text tokens and the image markers before its first
# trained token (where the answer starts, for the truncation check).
PER_SAMPLE_FIELDS = 3
# Samples between progress reports: often enough for a smooth bar, rarely enough to cost nothing.
REPORT_EVERY = 64


@dataclass(frozen=True)
class Tokenizer:
    """How every sample is tokenized: the template, the tokenizer and the image placement."""

    template: ChatTemplate
    tokenizer: PreTrainedTokenizerBase
    placement: Placement


def part_files(folder: Path, part: int) -> dict[str, Path]:
    stem = folder / f"part-{part:04d}"
    return {name: stem.with_suffix(f".{name}") for name in ("ids", "trained", "numbers", "problems")}


def tokenize_part(
    samples: Sequence[Sample], start: int, stop: int, how: Tokenizer, files: dict[str, Path],
    advance: Callable[[int], None],
) -> None:
    """Tokenize ``samples[start:stop]`` into ``files``; ``advance(n)`` reports progress."""
    numbers = np.zeros((stop - start, PER_SAMPLE_FIELDS), dtype=np.int64)
    problems: list[list[object]] = []
    with files["ids"].open("wb") as ids_out, files["trained"].open("wb") as trained_out:
        for index in range(start, stop):
            tokens = sample_tokens(samples[index], how.template, how.tokenizer, how.placement)
            if isinstance(tokens, TokenProblem):
                problems.append([index, tokens.kind, tokens.message, tokens.error.message,
                                 tokens.error.hint])
            else:
                ids = np.asarray(tokens.input_ids, dtype=IDS_DTYPE)
                trained = np.asarray(tokens.labels) != IGNORE_INDEX
                ids_out.write(ids.tobytes())
                trained_out.write(trained.astype(np.uint8).tobytes())
                first = int(np.argmax(trained))  # a tokenized sample always trains a token
                images = int(np.count_nonzero(ids[:first] == IMAGE_TOKEN_ID))
                numbers[index - start] = (len(ids), first - images, images)
            if (index - start + 1) % REPORT_EVERY == 0:
                advance(REPORT_EVERY)
    advance((stop - start) % REPORT_EVERY)
    with files["numbers"].open("wb") as out:
        np.save(out, numbers)
    files["problems"].write_text(json.dumps(problems), encoding="utf-8")
