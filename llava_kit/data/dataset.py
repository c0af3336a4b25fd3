"""A training dataset: samples rendered by a chat template and tokenized with label masks.

Tokenization happens once, before training, so a template/tokenizer mismatch or an
all-masked sample fails when the data is loaded (naming the sample), not hours into
training, and so the sequence lengths are known to the batch sampler. The tokens come
from a token store (``data/token_store``: flat memory-mapped columns shared by every rank
and loader worker) or, for a data format that cannot name its files, from tokenizing the
loaded samples in memory (``tokenize_samples``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from llava_kit.data.collate import Example
from llava_kit.data.feature_cache import FeatureCache
from llava_kit.data.images import load_image
from llava_kit.data.sample import Sample
from llava_kit.data.sample_tokens import Placement, TokenProblem, sample_tokens
from llava_kit.data.worker_errors import SampleLoadError
from llava_kit.errors import DataError
from llava_kit.templates.base import ChatTemplate
from llava_kit.templates.fit import check_template_fits
from llava_kit.templates.image_position import ImagePosition

Preprocess = Callable[[Image.Image], torch.Tensor]


@dataclass(frozen=True)
class TokenizedSample:
    id: str
    input_ids: list[int]
    labels: list[int]
    images: tuple[Path, ...]


class TokenSource(Protocol):
    """Tokenized samples by position: a token store's rows, or a list in memory."""

    def __len__(self) -> int: ...

    def sample_id(self, index: int) -> str: ...

    def tokens(self, index: int) -> tuple[list[int], list[int]]: ...

    def images(self, index: int) -> tuple[Path, ...]: ...

    def token_counts(self) -> np.ndarray: ...

    def image_counts(self) -> np.ndarray: ...


class TokenizedList:
    """``TokenizedSample`` objects as a token source."""

    def __init__(self, samples: Sequence[TokenizedSample]) -> None:
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def sample_id(self, index: int) -> str:
        return self.samples[index].id

    def tokens(self, index: int) -> tuple[list[int], list[int]]:
        return self.samples[index].input_ids, self.samples[index].labels

    def images(self, index: int) -> tuple[Path, ...]:
        return self.samples[index].images

    def token_counts(self) -> np.ndarray:
        return np.fromiter((len(s.input_ids) for s in self.samples), np.int64, len(self.samples))

    def image_counts(self) -> np.ndarray:
        return np.fromiter((len(s.images) for s in self.samples), np.int64, len(self.samples))


def tokenize_samples(
    samples: Sequence[Sample],
    template: ChatTemplate,
    tokenizer: PreTrainedTokenizerBase,
    *,
    image_position: ImagePosition = "image_first",
    seed: int = 0,
) -> list[TokenizedSample]:
    check_template_fits(template, tokenizer)
    placement = Placement(image_position, seed)
    out: list[TokenizedSample] = []
    for sample in samples:
        tokens = sample_tokens(sample, template, tokenizer, placement)
        if isinstance(tokens, TokenProblem):
            raise tokens.error
        out.append(TokenizedSample(sample.id, tokens.input_ids, tokens.labels, tuple(sample.images)))
    return out


class ConversationDataset(Dataset[Example]):
    """Tokenized samples; each item loads and preprocesses its images on access, or, with
    a filled ``features`` cache (frozen encoder), reads their encoder features instead."""

    def __init__(
        self, tokenized: TokenSource | Sequence[TokenizedSample], preprocess: Preprocess,
        features: FeatureCache | None = None,
    ) -> None:
        self.source: TokenSource = (
            TokenizedList(tokenized) if isinstance(tokenized, Sequence) else tokenized
        )
        self.preprocess = preprocess
        self.features = features

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Example:
        try:
            return self._example(index)
        except DataError as exc:  # from a loader worker, a plain DataError shows as a traceback
            raise SampleLoadError(exc.message, hint=exc.hint) from exc

    def _example(self, index: int) -> Example:
        sample_id = self.source.sample_id(index)
        input_ids, labels = self.source.tokens(index)
        example: Example = {"id": sample_id, "input_ids": input_ids, "labels": labels}
        images = self.source.images(index)
        if images and self.features is not None:
            example["image_features"] = torch.stack([self.features.load(p) for p in images])
        elif images:
            example["pixel_values"] = torch.stack(
                [self.preprocess(load_image(path, sample_id=sample_id)) for path in images]
            )
        return example

    def sample_ids(self) -> Iterator[str]:
        return (self.source.sample_id(index) for index in range(len(self)))

    def image_paths(self) -> Iterator[Path]:
        """Every image of every sample, in order (repeats included)."""
        return (path for index in range(len(self)) for path in self.source.images(index))
