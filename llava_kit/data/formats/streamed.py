"""The contract of a data format read as a stream while training (web-scale sets too big to
load as one list): training draws micro batches from ``stream``, the full data check reads
``records`` once, the start-of-run check only ``num_samples``.

A streamed stage is never loaded whole, so it has no token store, no length grouping and no
feature cache (both need every sample before the first step), and the skip policy cannot
drop its samples by id ahead of time: `llava-kit data check` lists its bad samples.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from llava_kit.data.formats.base import DataFormat
from llava_kit.data.sample import Sample
from llava_kit.errors import DataError

if TYPE_CHECKING:
    import torch
    from PIL import Image
    from torch.utils.data import IterableDataset
    from transformers import PreTrainedTokenizerBase

    from llava_kit.data.collate import Example
    from llava_kit.data.sample_tokens import Placement
    from llava_kit.templates.base import ChatTemplate


@dataclass(frozen=True)
class StreamRecord:
    """One sample as stored: where it is, its conversation, its images' names and bytes."""

    location: str
    sample: Sample  # ``images`` left empty: the images are the bytes below
    images: list[tuple[str, bytes]]

    def named_images(self) -> Sample:
        """The sample with its images' names as paths, for checks that count its images."""
        return replace(self.sample, images=[Path(name) for name, _ in self.images])


@dataclass(frozen=True)
class StreamPosition:
    """Which reader a loader is, and how many micro batches it handed out before (resume)."""

    rank: int = 0
    world_size: int = 1
    consumed: int = 0


@dataclass(frozen=True)
class StreamSettings:
    """What turns records into a rank's micro batches of examples."""

    template: "ChatTemplate"
    tokenizer: "PreTrainedTokenizerBase"
    preprocess: "Callable[[Image.Image], torch.Tensor]"
    micro_size: int
    placement: "Placement"
    seed: int


class StreamedFormat(DataFormat):
    """A format that streams; ``load`` is refused, since the whole set never fits a list."""

    def load(self) -> list[Sample]:
        raise DataError(
            f"{type(self).__name__} streams its samples; they cannot be loaded as one list",
            hint="use this format as a training stage's data; convert evaluation data to "
            "LLaVA JSON",
        )

    @abstractmethod
    def num_samples(self) -> int:
        """Samples in one pass (from an index, without reading them)."""

    @abstractmethod
    def records(self) -> Iterator[StreamRecord]:
        """Every record once, in storage order (the full data check)."""

    @abstractmethod
    def stream(self, settings: StreamSettings,
               position: StreamPosition) -> "IterableDataset[list[Example]]":
        """This rank's endless micro batches from ``position`` on, for a
        ``DataLoader(batch_size=None)``."""
