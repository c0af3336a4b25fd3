"""--parallel K: each cell process gets its own share of the GPUs (or of the CPU cores)."""

from __future__ import annotations

import pytest
import torch

from llava_kit.errors import LlavaKitError
from llava_kit.grid.executor import device_slots
from llava_kit.grid.resources import Resources


@pytest.fixture()
def four_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_gpus_are_split_evenly(four_gpus: None) -> None:
    assert device_slots(2) == [{"CUDA_VISIBLE_DEVICES": "0,1"}, {"CUDA_VISIBLE_DEVICES": "2,3"}]
    assert device_slots(3) == [{"CUDA_VISIBLE_DEVICES": g} for g in ("0", "1", "2")]


def test_the_visible_gpus_are_the_ones_split(
    four_gpus: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    assert device_slots(2) == [{"CUDA_VISIBLE_DEVICES": "4,5"}, {"CUDA_VISIBLE_DEVICES": "6,7"}]


def test_more_cells_than_gpus_is_an_error(four_gpus: None) -> None:
    with pytest.raises(LlavaKitError, match="--parallel 5 needs at least 5 GPUs; 4 visible"):
        device_slots(5)


def test_on_cpu_the_cores_are_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert device_slots(2) == [{"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"}] * 2


def test_a_cell_of_several_processes_gets_at_least_that_many_gpus(four_gpus: None) -> None:
    two = Resources(nproc_per_node=2)
    assert device_slots(2, two) == [{"CUDA_VISIBLE_DEVICES": "0,1"}, {"CUDA_VISIBLE_DEVICES": "2,3"}]
    with pytest.raises(LlavaKitError, match="--parallel 3 with 2 GPUs per cell needs at least "
                                            "6 GPUs; 4 visible") as refused:
        device_slots(3, two)
    assert refused.value.hint is not None and "--parallel 2 or fewer" in refused.value.hint


def test_on_cpu_each_process_of_a_cell_gets_its_share_of_the_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert device_slots(2, Resources(nproc_per_node=2)) == [
        {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}] * 2


def test_cpu_only_cells_see_no_gpu(four_gpus: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert device_slots(1, Resources(nproc_per_node=2, gpus_per_process=0)) == [
        {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}]
