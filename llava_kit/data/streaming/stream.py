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
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import webdataset
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info
from transformers import PreTrainedTokenizerBase

from llava_kit.data.collate import Example
from llava_kit.data.formats.streamed import StreamPosition, StreamRecord
from llava_kit.data.images import decode_image
from llava_kit.data.sample import Sample
from llava_kit.data.sample_tokens import Placement, TokenProblem, sample_tokens, text_problems
from llava_kit.data.streaming.shards import ShardIndex
from llava_kit.data.worker_errors import SampleLoadError
from llava_kit.errors import DataError
from llava_kit.templates.base import ChatTemplate, Message

Preprocess = Callable[[Image.Image], torch.Tensor]
# A sample's JSON larger than this is refused before it is parsed (shards are untrusted).
MAX_RECORD_BYTES = 16 << 20


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
        seed: int = 0, shuffle_buffer: int = 1000, position: StreamPosition = StreamPosition(),
    ) -> None:
        self.index, self.template, self.tokenizer = index, template, tokenizer
        self.preprocess, self.micro_size, self.placement = preprocess, micro_size, placement
        self.seed, self.shuffle_buffer, self.position = seed, shuffle_buffer, position

    def __iter__(self) -> Iterator[list[Example]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        consumed = self.position.consumed
        # A resumed loader asks its workers in turn from worker 0 again, while the next
        # batch is due from worker ``consumed % workers``: each worker takes over the
        # stream of the one whose turn it now is.
        role = (worker + consumed) % workers
        slot = self.position.rank * workers + role
        slots = self.position.world_size * workers
        if slots > len(self.index.shards):  # shown whole even from a loader worker
            raise SampleLoadError(
                f"{self.index.folder}: {len(self.index.shards)} shard(s) for {slots} readers "
                f"({self.position.world_size} process(es) x {workers} loader worker(s)); every "
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
            samples = shard_samples(order[slot::slots])
            rng = random.Random(f"{self.seed}:{epoch}:{slot}")
            yield from webdataset.shuffle(self.shuffle_buffer, self.shuffle_buffer, rng=rng)(samples)

    def _example(self, raw: dict[str, Any]) -> Example:
        record = stream_record(raw)
        sample = record.sample
        # What the data check of a loaded stage finds before training, found here as the
        # sample arrives: the markers against its images, then its tokens.
        problems = [message for _, message in text_problems(record.named_images())]
        tokens = sample_tokens(sample, self.template, self.tokenizer, self.placement)
        if isinstance(tokens, TokenProblem):
            problems.append(tokens.message)
        if problems:
            raise DataError(f"{record.location}: sample {sample.id!r}: {problems[0]}",
                            hint="`llava-kit data check RECIPE` lists every bad sample of the "
                            "shards; write them again without those")
        example: Example = {"id": sample.id, "input_ids": tokens.input_ids, "labels": tokens.labels}
        if record.images:
            example["pixel_values"] = torch.stack([
                self.preprocess(decode_image(io.BytesIO(data), name=f"{record.location}/{name}"))
                for name, data in record.images
            ])
        return example


def records_in_order(index: ShardIndex) -> Iterator[StreamRecord]:
    """Every record of the folder once, shard by shard (the full data check)."""
    for raw in shard_samples(index.paths()):
        yield stream_record(raw)


def shard_samples(paths: list[Path]) -> Iterator[dict[str, Any]]:
    """The undecoded samples of ``paths`` in order; a shard that is not a whole tar file
    (truncated, overwritten, unreadable) is named rather than raised from the tar reader."""
    for path in paths:
        try:
            yield from webdataset.tarfile_to_samples()(iter([{"url": str(path)}]))
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            raise DataError(f"{path}: not a readable tar shard ({type(exc).__name__})",
                            hint="copy the shard again from where it was written, or write "
                            "the shards again with `llava-kit data convert`") from None


def stream_record(raw: dict[str, Any]) -> StreamRecord:
    """A tar sample as `data convert` wrote it, checked (shards are untrusted)."""
    location = f"{Path(str(raw.get('__url__'))).name}:{raw.get('__key__')}"
    if len(raw.get("json", b"")) > MAX_RECORD_BYTES:
        raise DataError(f"{location}: the sample's JSON is over {MAX_RECORD_BYTES >> 20} MB",
                        hint="write the shards again with `llava-kit data convert`")
    try:
        record = json.loads(raw["json"])
        messages = [Message(role, content) for role, content in record["messages"]]
        images = [(name, raw[name]) for name in record["images"]]
        sample = Sample(str(record["id"]), messages, origin=location)
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{location}: not a sample written by `llava-kit data convert` ({exc!r})",
                        hint="write the shards again with `llava-kit data convert`") from None
    if not all(isinstance(data, bytes) for _, data in images):
        raise DataError(f"{location}: an image entry is not a file of the sample",
                        hint="write the shards again with `llava-kit data convert`")
    return StreamRecord(location, sample, images)
