"""Streaming from shards: `data convert` writes what the data format loads, every sample is
read once per pass across ranks and loader workers, and a killed run resumes at the same
sample."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from llava_kit.data.collate import Collator
from llava_kit.data.dataset import tokenize_samples
from llava_kit.data.formats.streamed import StreamPosition
from llava_kit.data.streaming.convert import convert_to_shards
from llava_kit.data.streaming.shards import read_index
from llava_kit.data.streaming.stream import ShardStream
from llava_kit.data.streaming.shards import INDEX_FILE
from llava_kit.errors import DataError
from llava_kit.templates.vicuna import V1Template

MICRO = 2


def _pixels(image: object) -> torch.Tensor:
    return torch.tensor(np.asarray(image.resize((4, 4)), dtype=np.float32))  # type: ignore[attr-defined]


@pytest.fixture
def shards(tmp_path: Path, store_kit: SimpleNamespace) -> SimpleNamespace:
    request = store_kit.request(store_kit.write_data(tmp_path, count=40), None)
    index = convert_to_shards(request.data_format, tmp_path / "shards", shard_size=5)
    return SimpleNamespace(index=index, data_format=request.data_format)


def _loader(shards: SimpleNamespace, tokenizer: PreTrainedTokenizerBase, *, rank: int = 0,
            consumed: int = 0, workers: int = 2) -> DataLoader:
    stream = ShardStream(read_index(shards.index.folder), template=V1Template(),
                         tokenizer=tokenizer, preprocess=_pixels, micro_size=MICRO, seed=7,
                         shuffle_buffer=4, position=StreamPosition(rank, 2, consumed))
    return DataLoader(stream, batch_size=None, collate_fn=Collator(3, 0, 80), num_workers=workers)


def test_ranks_and_workers_read_every_sample_once_a_pass_with_its_tokens(
    shards: SimpleNamespace, tiny_tokenizer: PreTrainedTokenizerBase,
) -> None:
    assert [count for _, count in shards.index.shards] == [5] * 8
    direct = {s.id: s for s in tokenize_samples(shards.data_format.load(), V1Template(),
                                                 tiny_tokenizer)}
    seen: list[str] = []
    for rank in (0, 1):
        batches = iter(_loader(shards, tiny_tokenizer, rank=rank))
        for _ in range(20 // MICRO):  # one pass: 2 ranks x 2 workers x 2 shards x 5 samples
            batch = next(batches)
            seen += batch["ids"]
            for row, sample_id in enumerate(batch["ids"]):
                sample = direct[sample_id]
                ids, _ = Collator(3, 0, 80).expand(sample.input_ids, sample.labels)
                expected = torch.tensor(ids[:80])
                assert torch.equal(batch["input_ids"][row, : len(expected)], expected)
    assert sorted(seen) == sorted(direct)


def _run_until_killed(shards: SimpleNamespace, tokenizer: PreTrainedTokenizerBase,
                      out: Path, steps: int) -> None:
    batches = iter(_loader(shards, tokenizer))
    for step in range(steps + 100):
        with out.open("a") as handle:
            handle.write(",".join(next(batches)["ids"]) + "\n")
        if step + 1 == steps:
            os.kill(os.getpid(), signal.SIGKILL)  # mid-run, with workers still prefetching


def test_a_killed_stream_resumes_at_the_same_sample(
    tmp_path: Path, shards: SimpleNamespace, tiny_tokenizer: PreTrainedTokenizerBase,
) -> None:
    record = tmp_path / "consumed.txt"
    child = multiprocessing.get_context("fork").Process(
        target=_run_until_killed, args=(shards, tiny_tokenizer, record, 7))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == -signal.SIGKILL
    before = [line.split(",") for line in record.read_text().splitlines()]
    assert len(before) == 7
    uninterrupted = iter(_loader(shards, tiny_tokenizer))
    expected = [next(uninterrupted)["ids"] for _ in range(7 + 12)]
    assert before == expected[:7]
    resumed = iter(_loader(shards, tiny_tokenizer, consumed=len(before)))
    assert [next(resumed)["ids"] for _ in range(12)] == expected[7:]  # into the next pass too


def test_an_unfinished_convert_is_refused(shards: SimpleNamespace) -> None:
    (shards.index.folder / INDEX_FILE).unlink()  # what a convert killed before the end leaves
    with pytest.raises(DataError, match="no index.json") as caught:
        read_index(shards.index.folder)
    assert "llava-kit data convert" in (caught.value.hint or "")


def test_data_convert_writes_the_shards_of_a_captions_file(
    tmp_path: Path, store_kit: SimpleNamespace,
) -> None:
    from typer.testing import CliRunner

    from llava_kit.cli.data_cmd import data_app

    store_kit.write_data(tmp_path, count=3)
    captions = [{"id": f"c{i}", "image": f"{i}.png", "caption": f"A square, number {i}."}
                for i in range(3)]
    (tmp_path / "captions.json").write_text(json.dumps(captions))
    done = CliRunner().invoke(data_app, [
        "convert", "--format", "captions", "--path", str(tmp_path / "captions.json"),
        "--image-root", str(tmp_path / "images"), "--out", str(tmp_path / "shards"),
        "--shard-size", "2",
    ])
    assert done.exit_code == 0, done.output
    assert "wrote 3 samples in 2 shard(s)" in done.output
    assert [count for _, count in read_index(tmp_path / "shards").shards] == [2, 1]
