"""A training dataset: samples rendered by a chat template and tokenized with label masks.

Tokenization happens once, up front, so a template/tokenizer mismatch or an all-masked
sample fails when the data is loaded (naming the sample), not hours into training, and
so the sequence lengths are known to the batch sampler.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from llava_kit.data.collate import Example
from llava_kit.data.feature_cache import FeatureCache
from llava_kit.data.images import load_image
from llava_kit.data.sample import Sample
from llava_kit.data.worker_errors import SampleLoadError
from llava_kit.errors import DataError
from llava_kit.templates.base import ChatTemplate
from llava_kit.templates.fit import check_template_fits
from llava_kit.templates.image_position import place_image
from llava_kit.templates.tokenize import tokenize_conversation

ImagePosition = Literal["image_first", "question_first", "random"]
Preprocess = Callable[[Image.Image], torch.Tensor]


@dataclass(frozen=True)
class TokenizedSample:
    id: str
    input_ids: list[int]
    labels: list[int]
    images: tuple[Path, ...]


def sample_rng(seed: int, sample_id: str) -> random.Random:
    """A per-sample generator, so random choices do not depend on worker order."""
    return random.Random(f"{seed}:{sample_id}")


def tokenize_samples(
    samples: Sequence[Sample],
    template: ChatTemplate,
    tokenizer: PreTrainedTokenizerBase,
    *,
    image_position: ImagePosition = "image_first",
    seed: int = 0,
) -> list[TokenizedSample]:
    check_template_fits(template, tokenizer)
    out: list[TokenizedSample] = []
    for sample in samples:
        messages = place_image(sample.messages, image_position, sample_rng(seed, sample.id))
        try:
            segments = template.render(messages)
        except DataError as exc:
            raise DataError(f"sample {sample.id!r}: {exc.message}", hint=exc.hint) from exc
        tokens = tokenize_conversation(segments, tokenizer, sample_id=sample.id)
        out.append(TokenizedSample(sample.id, tokens.input_ids, tokens.labels, tuple(sample.images)))
    return out


class ConversationDataset(Dataset[Example]):
    """Tokenized samples; each item loads and preprocesses its images on access, or, with
    a filled ``features`` cache (frozen encoder), reads their encoder features instead."""

    def __init__(
        self, tokenized: Sequence[TokenizedSample], preprocess: Preprocess,
        features: FeatureCache | None = None,
    ) -> None:
        self.tokenized = list(tokenized)
        self.preprocess = preprocess
        self.features = features

    def __len__(self) -> int:
        return len(self.tokenized)

    def __getitem__(self, index: int) -> Example:
        try:
            return self._example(self.tokenized[index])
        except DataError as exc:  # from a loader worker, a plain DataError shows as a traceback
            raise SampleLoadError(exc.message, hint=exc.hint) from exc

    def _example(self, sample: TokenizedSample) -> Example:
        example: Example = {"id": sample.id, "input_ids": sample.input_ids, "labels": sample.labels}
        if sample.images and self.features is not None:
            example["image_features"] = torch.stack([self.features.load(p) for p in sample.images])
        elif sample.images:
            example["pixel_values"] = torch.stack(
                [self.preprocess(load_image(path, sample_id=sample.id)) for path in sample.images]
            )
        return example

    def num_images(self, index: int) -> int:
        return len(self.tokenized[index].images)
