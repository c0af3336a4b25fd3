"""The order of samples: global batches split into micro batches across ranks.

Each optimizer step consumes one global batch, cut into contiguous micro batches;
micro batch ``k`` goes to rank ``k % world_size`` as its accumulation step
``k // world_size``. One process accumulating all micro batches and N processes each
taking their share therefore average exactly the same micro-batch losses, which is what
lets multi-process runs reproduce the single-process loss curve.

With ``lengths`` given, the order groups samples by length (the reference's
``group_by_modality_length``, with a larger sorting window): image samples and text-only
samples are shuffled apart, each shuffled list is cut into windows of
``GROUP_WINDOW`` micro batches, every window is sorted by length and cut into micro
batches, and the micro batches of both kinds are shuffled together. The order stays a
pure function of ``(seed, epoch)`` and never of the world size, so resuming and the
1-vs-N-process equivalence hold as for the plain shuffle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np
import torch

from llava_kit.errors import RecipeError

# Micro batches per sorting window: wider windows pad less but vary batches less.
GROUP_WINDOW = 64


class _Counts(Protocol):
    def token_counts(self) -> np.ndarray: ...

    def image_counts(self) -> np.ndarray: ...


@dataclass(frozen=True)
class BatchPlan:
    num_samples: int
    global_size: int
    micro_size: int
    world_size: int
    seed: int
    # Per sample: token length after visual-token expansion (and truncation), and whether
    # it has an image. None = the plain random order.
    lengths: tuple[int, ...] | None = None
    has_image: tuple[bool, ...] | None = None
    _orders: dict[int, list[int]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        per_step = self.micro_size * self.world_size
        if self.global_size % per_step:
            raise RecipeError(
                f"batch.global_size {self.global_size} is not a multiple of batch.micro_size "
                f"{self.micro_size} x {self.world_size} processes",
                hint="choose a global batch divisible by micro batch x number of processes",
            )
        if self.num_samples < self.global_size:
            raise RecipeError(
                f"the stage has {self.num_samples} samples, fewer than one global batch "
                f"({self.global_size})",
                hint="lower batch.global_size or add data",
            )
        for name in ("lengths", "has_image"):
            values = getattr(self, name)
            if values is not None and len(values) != self.num_samples:
                raise ValueError(f"{name} has {len(values)} entries for {self.num_samples} samples")
        if (self.lengths is None) != (self.has_image is None):
            raise ValueError("length grouping needs both lengths and has_image")

    @property
    def grouped(self) -> bool:
        return self.lengths is not None

    @property
    def accumulation(self) -> int:
        return self.global_size // (self.micro_size * self.world_size)

    @property
    def steps_per_epoch(self) -> int:
        # The incomplete last global batch is dropped; the shuffle differs per epoch,
        # so no sample is left out of training systematically.
        return self.num_samples // self.global_size

    def order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            if len(self._orders) >= 2:  # a run only ever needs the current epoch (and the last)
                self._orders.pop(next(iter(self._orders)))
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._orders[epoch] = (
                self._grouped_order(generator) if self.grouped
                else torch.randperm(self.num_samples, generator=generator).tolist()
            )
        return self._orders[epoch]

    def _grouped_order(self, generator: torch.Generator) -> list[int]:
        assert self.lengths is not None and self.has_image is not None
        lengths = self.lengths
        window = GROUP_WINDOW * self.micro_size
        micros: list[list[int]] = []
        leftovers: list[int] = []
        for modality in (True, False):
            members = [i for i, image in enumerate(self.has_image) if bool(image) == modality]
            shuffled = [members[j] for j in torch.randperm(len(members), generator=generator).tolist()]
            for start in range(0, len(shuffled), window):
                chunk = sorted(shuffled[start : start + window], key=lambda i: -lengths[i])
                whole = len(chunk) - len(chunk) % self.micro_size
                micros += [chunk[k : k + self.micro_size] for k in range(0, whole, self.micro_size)]
                leftovers += chunk[whole:]
        # At most one short remainder per modality: it fills the last micro batches (mixed).
        mixed = [micros[j] for j in torch.randperm(len(micros), generator=generator).tolist()]
        return [index for micro in mixed for index in micro] + leftovers

    def micro_batches(self, step: int, rank: int) -> list[list[int]]:
        """This rank's micro batches (sample indices) for global optimizer step ``step``."""
        epoch, within = divmod(step, self.steps_per_epoch)
        start = within * self.global_size
        batch = self.order(epoch)[start : start + self.global_size]
        micros = [batch[i : i + self.micro_size] for i in range(0, len(batch), self.micro_size)]
        return micros[rank :: self.world_size]


def sample_lengths(
    tokenized: _Counts, num_visual_tokens: int, max_length: int
) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """Per sample: the collated length (images expanded, truncated) and whether it has images."""
    images = tokenized.image_counts()
    lengths = np.minimum(max_length, tokenized.token_counts() + images * (num_visual_tokens - 1))
    return tuple(lengths.tolist()), tuple((images > 0).tolist())


class PaddingMeter:
    """The share of padded positions in the micro batches of one step and of one epoch.

    Right padding to the longest sample of each micro batch makes it a function of the
    plan and the lengths alone, identical on every rank and across resumes.
    """

    def __init__(self, plan: BatchPlan, lengths: Sequence[int]) -> None:
        self.plan = plan
        self.lengths = lengths
        self._epochs: dict[int, float] = {}

    def step(self, step: int) -> float:
        padded, total = self._count(step)
        return padded / max(total, 1)

    def epoch(self, epoch: int) -> float:
        if epoch not in self._epochs:
            per_epoch = self.plan.steps_per_epoch
            counts = [self._count(s) for s in range(epoch * per_epoch, (epoch + 1) * per_epoch)]
            self._epochs[epoch] = sum(p for p, _ in counts) / max(sum(t for _, t in counts), 1)
        return self._epochs[epoch]

    def _count(self, step: int) -> tuple[int, int]:
        padded = total = 0
        for rank in range(self.plan.world_size):
            for micro in self.plan.micro_batches(step, rank):
                width = max(self.lengths[i] for i in micro)
                total += width * len(micro)
                padded += sum(width - self.lengths[i] for i in micro)
        return padded, total
