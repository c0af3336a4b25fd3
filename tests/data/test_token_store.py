"""The token store: the tokens of direct tokenization, reused while nothing that decides
them changes and rebuilt when something does, never read half-built, the same batches
with loader workers as without."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from llava_kit.data import dataset as dataset_module
from llava_kit.data.collate import Collator
from llava_kit.data.dataset import ConversationDataset, tokenize_samples
from llava_kit.data.sample_tokens import Placement
from llava_kit.data.token_store import build as build_module
from llava_kit.data.token_store import cache as cache_module
from llava_kit.data.token_store import open_token_store
from llava_kit.errors import LlavaKitError
from llava_kit.templates.plain import PlainTemplate
from llava_kit.tiny.tokenizer import default_corpus, train_tokenizer


def _pixels(image: object) -> torch.Tensor:
    return torch.tensor(np.asarray(image.resize((4, 4)), dtype=np.float32))  # type: ignore[attr-defined]


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The folders built while the test runs (the builds themselves are unchanged)."""
    built: list[Path] = []
    real = cache_module.build_store

    def counted(job: object, folder: Path, processes: int | None = None) -> None:
        built.append(folder)
        real(job, folder, processes)  # type: ignore[arg-type]

    monkeypatch.setattr(cache_module, "build_store", counted)
    return built


def _direct(request: SimpleNamespace) -> list[dataset_module.TokenizedSample]:
    placement = request.placement
    return tokenize_samples(request.data_format.load(), request.template, request.tokenizer,
                            image_position=placement.image_position, seed=placement.seed)


@pytest.mark.parametrize("placement", [Placement(), Placement("random", 3)])
@pytest.mark.parametrize("processes", [1, 2])
def test_the_store_holds_what_direct_tokenization_gives_and_batches_the_same(
    tmp_path: Path, store_kit: SimpleNamespace, tiny_tokenizer: PreTrainedTokenizerBase,
    placement: Placement, processes: int, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(build_module, "MIN_PART", 4)  # small parts: two processes tokenize
    request = store_kit.request(store_kit.write_data(tmp_path), tiny_tokenizer,
                                placement=placement)
    store = open_token_store(request, tmp_path / "stores", processes=processes)
    assert store is not None
    direct = _direct(request)
    rows = store.rows()
    assert [rows.sample_id(i) for i in range(len(rows))] == [s.id for s in direct]
    assert [rows.tokens(i) for i in range(len(rows))] == [(s.input_ids, s.labels) for s in direct]
    assert [rows.images(i) for i in range(len(rows))] == [s.images for s in direct]
    collate = Collator(num_visual_tokens=3, pad_token_id=0, max_length=40)
    stored = ConversationDataset(rows, _pixels)
    listed = ConversationDataset(direct, _pixels)
    order = [[5, 1, 2], [0, 7], [3, 4, 6], list(range(8, 24))]
    for micro in order:
        _assert_same_batch(collate([stored[i] for i in micro]), collate([listed[i] for i in micro]))


def _assert_same_batch(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(got[key], value), key
        else:
            assert got[key] == value, key


def test_the_same_inputs_reuse_the_store_and_each_change_rebuilds_it(
    tmp_path: Path, store_kit: SimpleNamespace, tiny_tokenizer: PreTrainedTokenizerBase,
    builds: list[Path],
) -> None:
    root = tmp_path / "stores"
    data = store_kit.write_data(tmp_path)
    first = open_token_store(store_kit.request(data, tiny_tokenizer), root)
    again = open_token_store(store_kit.request(data, tiny_tokenizer), root)
    assert first is not None and again is not None and again.folder == first.folder
    assert builds == [first.folder]  # the second open read the store the first one built

    records = store_kit.records(24)
    records[3]["conversations"][1]["value"] = "It is purple."
    data.write_text(json.dumps(records))
    changed_data = open_token_store(store_kit.request(data, tiny_tokenizer), root)
    plain = open_token_store(store_kit.request(data, tiny_tokenizer, ("plain", PlainTemplate())),
                             root)
    other = train_tokenizer(default_corpus() + ["It is purple, said the painter."],
                            tmp_path / "other_tokenizer")
    other_tokenizer = open_token_store(store_kit.request(data, other), root)
    folders = [s.folder for s in (first, changed_data, plain, other_tokenizer)]  # type: ignore[union-attr]
    assert len(set(folders)) == 4 and builds == folders
    edited = _direct(store_kit.request(data, tiny_tokenizer))[3]
    assert changed_data.rows().tokens(3) == (edited.input_ids, edited.labels)  # type: ignore[union-attr]


def test_a_missing_image_found_later_rebuilds_the_store(
    tmp_path: Path, store_kit: SimpleNamespace, tiny_tokenizer: PreTrainedTokenizerBase,
    builds: list[Path],
) -> None:
    data = store_kit.write_data(tmp_path)
    records = store_kit.records(24)
    records[0]["image"] = "late.png"
    data.write_text(json.dumps(records))
    root = tmp_path / "stores"
    before = open_token_store(store_kit.request(data, tiny_tokenizer), root)
    assert before is not None and [p.kind for p in before.findings.dropped] == ["missing_image"]
    assert before.rows(skip=frozenset()).sample_id(0) == "s1"
    (tmp_path / "images" / "0.png").rename(tmp_path / "images" / "late.png")
    (tmp_path / "images" / "0.png").write_bytes((tmp_path / "images" / "late.png").read_bytes())
    after = open_token_store(store_kit.request(data, tiny_tokenizer), root)
    assert after is not None and after.folder == before.folder and len(builds) == 2
    assert after.findings.dropped == [] and after.rows().sample_id(0) == "s0"


def test_a_killed_build_leaves_nothing_that_is_used(
    tmp_path: Path, store_kit: SimpleNamespace, tiny_tokenizer: PreTrainedTokenizerBase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = store_kit.request(store_kit.write_data(tmp_path), tiny_tokenizer)
    root = tmp_path / "stores"
    real = build_module._write_columns

    def killed_halfway(samples: list, files: list, temp: Path, findings: object) -> None:
        real(samples, files, temp, findings)  # type: ignore[arg-type]
        (temp / "key.json").write_text('{"key": {}, "samples": 24}')  # looks finished
        os.kill(os.getpid(), signal.SIGKILL)  # the builder dies before publishing

    monkeypatch.setattr(build_module, "_write_columns", killed_halfway)
    with pytest.raises(LlavaKitError, match="exit code -9"):
        open_token_store(request, root)
    leftovers = [p.name for p in root.iterdir() if p.is_dir()]
    assert len(leftovers) == 1 and ".tmp-" in leftovers[0]  # no store, a temporary folder
    monkeypatch.setattr(build_module, "_write_columns", real)
    store = open_token_store(request, root)
    assert store is not None
    assert [p.name for p in root.iterdir() if p.is_dir()] == [store.folder.name]
    rows = store.rows()
    assert [rows.tokens(i) for i in range(len(rows))] == \
        [(s.input_ids, s.labels) for s in _direct(request)]
    # A published store damaged afterwards (a truncated column) is rebuilt, not read.
    ids = store.folder / "ids.npy"
    ids.write_bytes(ids.read_bytes()[:-8])
    rebuilt = open_token_store(request, root)
    assert rebuilt is not None and rebuilt.rows().tokens(5) == rows.tokens(5)


def test_loader_workers_give_the_batches_of_the_loading_process(
    tmp_path: Path, store_kit: SimpleNamespace, tiny_tokenizer: PreTrainedTokenizerBase,
) -> None:
    store = open_token_store(store_kit.request(store_kit.write_data(tmp_path), tiny_tokenizer),
                             tmp_path / "stores")
    assert store is not None
    dataset = ConversationDataset(store.rows(), _pixels)
    collate = Collator(num_visual_tokens=3, pad_token_id=0, max_length=40)
    sampler = [[5, 1, 2], [0, 7], [3, 4, 6, 9], [11, 10], [8, 23, 12]]

    def batches(workers: int) -> list[dict]:
        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                            num_workers=workers)
        return list(loader)

    for got, want in zip(batches(2), batches(0), strict=True):
        _assert_same_batch(got, want)
