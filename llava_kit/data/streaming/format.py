"""The ``shards`` data format: a stage trained from a folder `llava-kit data convert` wrote.

Its webdataset reader is imported only when the shards are read, so the format is
registered (and a recipe naming it validated) without the ``streaming`` extra installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from llava_kit.components import Options
from llava_kit.data.formats.streamed import (
    StreamedFormat, StreamPosition, StreamRecord, StreamSettings,
)
from llava_kit.data.streaming.shards import ShardIndex, read_index
from llava_kit.errors import LlavaKitError

if TYPE_CHECKING:
    from llava_kit.data.streaming.stream import ShardStream


class ShardsOptions(Options):
    path: str  # the folder holding index.json and the tar shards
    # Samples held to shuffle within each reader's shards; more mixes better, costs memory.
    shuffle_buffer: int = Field(default=1000, ge=1, le=1_000_000)


class ShardsFormat(StreamedFormat):
    """Webdataset-style tar shards with an index, streamed by ranks and loader workers."""

    Options = ShardsOptions

    def index(self) -> ShardIndex:
        options: ShardsOptions = self.options  # type: ignore[assignment]
        return read_index(Path(options.path))

    def num_samples(self) -> int:
        return self.index().samples

    def records(self) -> Iterator[StreamRecord]:
        with needing_webdataset():
            from llava_kit.data.streaming.stream import records_in_order
        return records_in_order(self.index())

    def stream(self, settings: StreamSettings, position: StreamPosition) -> "ShardStream":
        options: ShardsOptions = self.options  # type: ignore[assignment]
        with needing_webdataset():
            from llava_kit.data.streaming.stream import ShardStream
        return ShardStream(
            self.index(), template=settings.template, tokenizer=settings.tokenizer,
            preprocess=settings.preprocess, micro_size=settings.micro_size,
            placement=settings.placement, seed=settings.seed,
            shuffle_buffer=options.shuffle_buffer, position=position,
        )


@contextmanager
def needing_webdataset() -> Iterator[None]:
    """Imports of the shard readers and writers; one screen naming the extra when missing."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if exc.name != "webdataset":
            raise
        raise LlavaKitError("reading shards needs the webdataset package",
                            hint='pip install "llava-kit[streaming]"') from None
