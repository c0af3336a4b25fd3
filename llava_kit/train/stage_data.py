"""Where a stage's micro batches come from: a dataset read in the batch plan's order, or a
streamed format's endless micro batches. Either way a resumed stage continues with the
micro batch an uninterrupted run would have taken next."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from torch.utils.data import DataLoader

from llava_kit.data.collate import Collator
from llava_kit.data.dataset import ConversationDataset
from llava_kit.data.formats.streamed import StreamedFormat, StreamPosition, StreamSettings
from llava_kit.train.batches import BatchPlan, PaddingMeter
from llava_kit.train.step import StepResult


class StageData(Protocol):
    plan: BatchPlan  # steps per epoch and accumulation (a stream's plan orders nothing)

    def loader(
        self, start_step: int, total_steps: int, rank: int, collator: Collator, num_workers: int
    ) -> DataLoader: ...

    def padding(self, step: int, result: StepResult) -> tuple[float, float]:
        """The padded share of step ``step``'s positions, and of its epoch's."""
        ...


@dataclass
class PlannedData:
    """A map-style dataset; each rank takes its micro batches of the plan's order."""

    dataset: ConversationDataset
    plan: BatchPlan
    meter: PaddingMeter

    def loader(
        self, start_step: int, total_steps: int, rank: int, collator: Collator, num_workers: int
    ) -> DataLoader:
        return DataLoader(self.dataset, batch_sampler=_StepSampler(self.plan, start_step, total_steps, rank),
                          collate_fn=collator, num_workers=num_workers)

    def padding(self, step: int, result: StepResult) -> tuple[float, float]:
        # From the plan and the lengths alone: the same on every rank and across resumes.
        return self.meter.step(step), self.meter.epoch(step // self.plan.steps_per_epoch)


@dataclass
class StreamedData:
    """A streamed format: each rank reads its own shards, so N processes see other samples
    than one process does (as with any sharded stream)."""

    data_format: StreamedFormat
    settings: StreamSettings
    plan: BatchPlan
    _epoch: tuple[int, int, int] = field(default=(-1, 0, 0), init=False)  # epoch, padded, total

    def loader(
        self, start_step: int, total_steps: int, rank: int, collator: Collator, num_workers: int
    ) -> DataLoader:
        position = StreamPosition(rank, self.plan.world_size, start_step * self.plan.accumulation)
        stream = self.data_format.stream(self.settings, position)
        return DataLoader(stream, batch_size=None, collate_fn=collator, num_workers=num_workers)

    def padding(self, step: int, result: StepResult) -> tuple[float, float]:
        # Measured on the batches themselves: the epoch's share counts the steps this
        # process trained of it.
        epoch = step // self.plan.steps_per_epoch
        padded = result.positions - result.tokens
        seen, epoch_padded, epoch_total = self._epoch
        if seen != epoch:
            epoch_padded = epoch_total = 0
        self._epoch = (epoch, epoch_padded + padded, epoch_total + result.positions)
        return padded / max(result.positions, 1), self._epoch[1] / max(self._epoch[2], 1)


class _StepSampler:
    """Yields this rank's micro batches for steps ``start`` .. ``stop`` (for resuming)."""

    def __init__(self, plan: BatchPlan, start: int, stop: int, rank: int) -> None:
        self.plan, self.start, self.stop, self.rank = plan, start, stop, rank

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            yield from self.plan.micro_batches(step, self.rank)

    def __len__(self) -> int:
        return (self.stop - self.start) * self.plan.accumulation
