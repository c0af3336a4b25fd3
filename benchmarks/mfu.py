"""Model-FLOPs utilisation of a stage-2 training step (frozen encoder; connector + LLM train).

Model FLOPs count the matrix multiplications the step needs, not what the kernels happen
to execute: 2 x (multiply-adds) for every Linear of a part times the vectors it sees, plus
attention's QK^T and AV products; the frozen encoder runs forward only, the connector and
LLM forward and backward (3x forward). The achieved rate is divided by the peak: on CPU
this machine's dense fp32 matmul rate, measured in a worker of its own in rounds
alternating with the step's (both see the same load); on a GPU the vendor's dense bf16
peak, in `gpu.py`, which counts the same way.

    python benchmarks/mfu.py [--size 100m] [--batch 4] [--steps 1] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from interleave import Spread, cpu_seconds  # noqa: E402
from train_throughput import SIZES, Shapes, num_patches  # noqa: E402
from worker import Job, measure  # noqa: E402

class MatmulJob(Job):
    """``reps`` n x n x n matmuls per round (2 n^3 FLOPs each): the device's attainable rate."""

    def __init__(self, device: str = "cpu", dtype: str = "float32", n: int = 2048, reps: int = 4) -> None:
        self.device = torch.device(device)
        self.a, self.b = (torch.randn(n, n, device=self.device, dtype=getattr(torch, dtype))
                          for _ in range(2))
        self.flops = 2 * n**3 * reps
        self.reps = reps
        self.run()  # kernels chosen and warmed

    def run(self) -> float:
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter() if cuda else cpu_seconds()
        for _ in range(self.reps):
            out = self.a @ self.b
        out.sum().item()  # waits for the device
        return (time.perf_counter() if cuda else cpu_seconds()) - start

    def info(self) -> dict[str, Any]:
        return {"flops": self.flops}


def linear_macs(module: nn.Module) -> int:
    return sum(m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))


def step_flops(model: nn.Module, batch: int, seq: int, patches: int) -> float:
    """Model FLOPs of one training step of our LlavaModel (frozen encoder)."""
    enc_cfg = model.encoder.tower.config
    llm_cfg = model.llm.config
    encoder = 2 * linear_macs(model.encoder) * (patches + 1) * batch  # CLIP adds a class token
    encoder += 4 * enc_cfg.num_hidden_layers * (patches + 1) ** 2 * enc_cfg.hidden_size * batch
    connector = 2 * linear_macs(model.connector) * patches * batch
    llm = 2 * linear_macs(model.llm) * seq * batch  # includes the LM head
    llm += 4 * llm_cfg.num_hidden_layers * seq**2 * llm_cfg.hidden_size * batch
    return encoder + 3 * (connector + llm)


def shapes_flops(shapes: Shapes, batch: int) -> float:
    """Model FLOPs of one step at these shapes, counted on a meta-device model (no memory)."""
    from train_throughput import build

    with torch.device("meta"):
        model = build("ours", shapes)
    patches = num_patches(shapes)
    return step_flops(model, batch, shapes[2] + patches, patches)


def utilisation(step_s: list[float], steps: int, flops: float, peak_s: list[float] | None,
                peak_flops: float) -> Spread:
    """Per-round MFU; with ``peak_s`` the peak is that round's measured rate."""
    achieved = [steps * flops / s for s in step_s]
    peaks = [peak_flops / s for s in peak_s] if peak_s else [peak_flops] * len(step_s)
    return Spread.of([a / p for a, p in zip(achieved, peaks)])


def measure_mfu(size: str, batch: int, steps: int, rounds: int) -> dict[str, Any]:
    """Interleaved step and matmul rounds on CPU (one worker each): the MFU spread."""
    shapes = SIZES[size]
    seconds, infos = measure({"step": ("train_throughput:StepJob", "ours", shapes, batch, steps),
                              "matmul": ("mfu:MatmulJob",)}, rounds)
    matmul_flops = infos[-1]["matmul"]["flops"]
    flops = shapes_flops(shapes, batch)
    spread = utilisation(seconds["step"], steps, flops, seconds["matmul"], matmul_flops)
    step_s = sorted(seconds["step"])[len(seconds["step"]) // 2] / steps
    peak_s = sorted(seconds["matmul"])[len(seconds["matmul"]) // 2]
    return {"size": size, "batch": batch, "seq": shapes[2] + num_patches(shapes),
            "mfu": spread, "achieved_gflops": flops / step_s / 1e9,
            "peak_gflops": matmul_flops / peak_s / 1e9,
            "peak_source": f"fp32 2048^3 matmul, {os.environ.get('OMP_NUM_THREADS', 'all')} thread(s)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="100m", choices=sorted(SIZES))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    result = measure_mfu(args.size, args.batch, args.steps, args.rounds)
    mfu: Spread = result.pop("mfu")
    print(json.dumps({**result, "mfu_median": mfu.median, "mfu_iqr": [mfu.low, mfu.high],
                      "rounds": mfu.rounds}))


if __name__ == "__main__":
    main()
