"""Two ranks of one run (a gloo process group) ask for the same token store at once: one
builds it while the other waits, and both read the same tokens."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch.distributed as dist
import torch.multiprocessing as torch_mp
from transformers import PreTrainedTokenizerBase

from llava_kit.data.token_store import cache as cache_module
from llava_kit.data.token_store import open_token_store


def _rank(rank: int, request: SimpleNamespace, work: Path) -> None:
    dist.init_process_group("gloo", init_method=f"file://{work / 'group'}", rank=rank,
                            world_size=2)
    real = cache_module.build_store

    def counted(job: object, folder: Path, processes: int | None = None) -> None:
        with (work / "builds").open("a") as handle:
            handle.write(f"{rank}\n")
        real(job, folder, processes)  # type: ignore[arg-type]

    cache_module.build_store = counted  # type: ignore[assignment]
    dist.barrier()  # both ask at the same moment
    store = open_token_store(request, work / "stores")  # type: ignore[arg-type]
    assert store is not None
    rows = store.rows()
    tokens = hashlib.sha256(json.dumps([rows.tokens(i) for i in range(len(rows))]).encode())
    seen: list[object] = [None, None]
    dist.all_gather_object(seen, (str(store.folder), tokens.hexdigest(), len(rows)))
    if rank == 0:
        (work / "seen.json").write_text(json.dumps(seen))
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.distributed
def test_two_ranks_build_one_store_and_read_the_same_tokens(
    tmp_path: Path, store_kit: SimpleNamespace, tiny_tokenizer: PreTrainedTokenizerBase,
) -> None:
    request = store_kit.request(store_kit.write_data(tmp_path, count=400), tiny_tokenizer)
    # Forked, not spawned: the ranks start in milliseconds with everything imported.
    torch_mp.start_processes(_rank, args=(request, tmp_path), nprocs=2, start_method="fork")
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen[0] == seen[1] and seen[0][2] == 400
    assert len((tmp_path / "builds").read_text().split()) == 1
    assert [p.name for p in (tmp_path / "stores").iterdir() if p.is_dir()] == [Path(seen[0][0]).name]
