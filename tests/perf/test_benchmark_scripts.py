"""The benchmark scripts: verdicts from the whole spread of interleaved rounds, and the GPU
benchmark's and the MFU benchmark's worker paths run at tiny shapes on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(autouse=True)
def benchmarks_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))


def test_rounds_alternate_and_verdicts_need_the_whole_spread() -> None:
    from interleave import Spread, combined, interleave, ratios, verdict

    order: list[str] = []
    seconds = interleave({"a": lambda: order.append("a") or 1.0,
                          "b": lambda: order.append("b") or 2.0}, rounds=3, warmup=1)
    assert order == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then AB, BA, AB
    assert ratios(seconds["b"], seconds["a"]) == Spread(2.0, 2.0, 2.0, 3)

    spread = Spread.of([0.9, 1.1, 1.2, 1.3, 1.5])
    assert (spread.low, spread.median, spread.high) == (1.1, 1.2, 1.3)
    assert spread.text() == "1.20x [1.10-1.30], 5 rounds"
    assert verdict(spread, 1.05) == "met"
    assert verdict(spread, 1.2) == "undecided"
    assert verdict(spread, 1.35) == "not met"
    assert verdict(spread, 1.35, higher_is_better=False) == "met"
    assert verdict(spread, 1.05, higher_is_better=False) == "not met"
    assert combined(["met", "undecided"]) == "undecided"
    assert combined(["undecided", "not met"]) == "not met"


def test_gpu_benchmark_runs_at_tiny_shapes(capsys: pytest.CaptureFixture[str]) -> None:
    import gpu

    gpu.main(["--tiny", "--rounds", "2", "--steps", "1", "--batch", "2"])
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("| sdpa |"))
    assert "2 rounds" in row and "MiB" in row


def test_mfu_benchmark_runs_at_tiny_shapes() -> None:
    import mfu

    result = mfu.measure_mfu("tiny", batch=2, steps=1, rounds=2)
    assert result["mfu"].rounds == 2 and 0 < result["mfu"].median
    assert result["achieved_gflops"] > 0 and result["peak_gflops"] > 0
