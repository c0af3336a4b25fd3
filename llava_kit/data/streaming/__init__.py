"""Streaming a stage's data from webdataset-style shards (image-caption sets too big for one
JSON file): ``convert`` writes them, ``stream`` reads them with shuffling, rank/worker
sharding and a resumable position."""

from llava_kit.data.streaming.convert import convert_to_shards
from llava_kit.data.streaming.shards import ShardIndex, read_index
from llava_kit.data.streaming.stream import Readers, ShardStream

__all__ = ["Readers", "ShardIndex", "ShardStream", "convert_to_shards", "read_index"]
