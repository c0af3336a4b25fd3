"""Streaming a shard folder into training examples: shards dealt to ranks and loader
workers, a shuffle buffer, and a position that a resumed run can start from.

Every pass over the data shuffles the shard order (the same on every rank, from the seed
and the pass), and reader ``slot`` (rank x workers + worker) reads every ``slots``-th
shard of that order, through a shuffle buffer seeded by the seed, the pass and the slot.
Each reader's stream is therefore a pure function of (seed, slot) and endless (pass after
pass), so a run resumed after a kill knows where every reader stands from the number of
micro batches its rank had consumed: a loader hands out its workers' batches in turn,
and each reader skips its share of them (without decoding or tokenizing what it skips).
The position assumes the same number of processes and loader workers as before.
"""

from __future__ import annotations

import io
import itertools
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import webdataset
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info
from transformers import PreTrainedTokenizerBase

from llava_kit.data.collate import Example
from llava_kit.data.images import decode_image
from llava_kit.data.sample import Sample
from llava_kit.data.sample_tokens import Placement, TokenProblem, sample_tokens
from llava_kit.data.streaming.shards import ShardIndex
from llava_kit.data.worker_errors import SampleLoadError
from llava_kit.errors import DataError
from llava_kit.templates.base import ChatTemplate, Message

Preprocess = Callable[[Image.Image], torch.Tensor]
# A sample's JSON larger than this is refused before it is parsed (shards are untrusted).
MAX_RECORD_BYTES = 16 << 20


@dataclass(frozen=True)
class Readers:
    """Where this loader sits: its rank among ``world_size``, and how far it already is."""

    rank: int = 0
    world_size: int = 1
    consumed: int = 0  # micro batches this rank's loader has handed out before


def skipped_batches(consumed: int, worker: int, workers: int) -> int:
    """Of the first ``consumed`` batches a loader handed out, how many worker ``worker``
    made (the loader takes one from each worker in turn)."""
    return max(0, -(-(consumed - worker) // workers))


class ShardStream(IterableDataset[list[Example]]):
    """Micro batches (lists of examples) of one rank; a DataLoader with ``batch_size=None``
    and the collator as ``collate_fn`` turns them into batches."""

    def __init__(
        self, index: ShardIndex, *, template: ChatTemplate, tokenizer: PreTrainedTokenizerBase,
        preprocess: Preprocess, micro_size: int, placement: Placement = Placement(),
        seed: int = 0, shuffle_buffer: int = 1000, readers: Readers = Readers(),
    ) -> None:
        self.index, self.template, self.tokenizer = index, template, tokenizer
        self.preprocess, self.micro_size, self.placement = preprocess, micro_size, placement
        self.seed, self.shuffle_buffer, self.readers = seed, shuffle_buffer, readers

    def __iter__(self) -> Iterator[list[Example]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        consumed = self.readers.consumed
        # A resumed loader asks its workers in turn from worker 0 again, while the next
        # batch is due from worker ``consumed % workers``: each worker takes over the
        # stream of the one whose turn it now is.
        role = (worker + consumed) % workers
        slot = self.readers.rank * workers + role
        slots = self.readers.world_size * workers
        if slots > len(self.index.shards):
            raise DataError(
                f"{self.index.folder}: {len(self.index.shards)} shard(s) for {slots} readers "
                f"({self.readers.world_size} process(es) x {workers} loader worker(s)); every "
                "reader needs a shard of its own",
                hint="write smaller shards (`llava-kit data convert --shard-size`), or use "
                "fewer runtime.num_workers",
            )
        raw = self.raw_samples(slot, slots)
        skip = skipped_batches(consumed, role, workers) * self.micro_size
        records = itertools.islice(raw, skip, None)
        while True:
            try:
                yield [self._example(next(records)) for _ in range(self.micro_size)]
            except DataError as exc:  # shown whole even from a loader worker
                raise SampleLoadError(exc.message, hint=exc.hint) from exc

    def raw_samples(self, slot: int, slots: int) -> Iterator[dict[str, Any]]:
        """Reader ``slot``'s endless stream of undecoded samples, pass after pass."""
        for epoch in itertools.count():
            order = self.index.paths()
            random.Random(f"{self.seed}:{epoch}").shuffle(order)
            mine = [{"url": str(path)} for path in order[slot::slots]]
            samples = webdataset.tarfile_to_samples()(iter(mine))
            rng = random.Random(f"{self.seed}:{epoch}:{slot}")
            yield from webdataset.shuffle(self.shuffle_buffer, self.shuffle_buffer, rng=rng)(samples)

    def _example(self, raw: dict[str, Any]) -> Example:
        sample, images = _sample(raw)
        tokens = sample_tokens(sample, self.template, self.tokenizer, self.placement)
        if isinstance(tokens, TokenProblem):
            raise tokens.error
        example: Example = {"id": sample.id, "input_ids": tokens.input_ids, "labels": tokens.labels}
        if images:
            example["pixel_values"] = torch.stack([
                self.preprocess(decode_image(io.BytesIO(data), name=f"{sample.id}/{name}"))
                for name, data in images
            ])
        return example


def _sample(raw: dict[str, Any]) -> tuple[Sample, list[tuple[str, bytes]]]:
    where = f"{raw.get('__url__')}: {raw.get('__key__')}"
    if len(raw.get("json", b"")) > MAX_RECORD_BYTES:
        raise DataError(f"{where}: the sample's JSON is over {MAX_RECORD_BYTES >> 20} MB",
                        hint="write the shards again with `llava-kit data convert`")
    try:
        record = json.loads(raw["json"])
        messages = [Message(role, content) for role, content in record["messages"]]
        images = [(name, raw[name]) for name in record["images"]]
        return Sample(str(record["id"]), messages), images
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{where}: not a sample written by `llava-kit data convert` ({exc!r})",
                        hint="write the shards again with `llava-kit data convert`") from None
