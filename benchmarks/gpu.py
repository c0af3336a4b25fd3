"""A stage-2 training step at 7B shapes on a GPU: speed, MFU and memory beside HF Llava.

LLaVA-1.5-7B's shapes with few decoder layers (CLIP ViT-L/14 at 336 px: 576 visual
tokens; Vicuna-7B's width, heads and vocabulary; ``--layers`` of its 32 decoder layers),
bf16 autocast over fp32 weights as ``runtime.precision: bf16`` trains, fused AdamW over
connector + LLM, frozen encoder. Every attention implementation installed is measured:
``sdpa`` always, ``flash_attention_2`` when ``flash-attn`` is importable. Ours and HF Llava
live in worker processes (one CUDA allocator each) and alternate in rounds
(``interleave.py``). MFU divides model FLOPs (``mfu.py``'s count) per second by the
device's dense bf16 peak (table below, or ``--peak-tflops``; an unknown device's measured
bf16 matmul rate otherwise).

``--tiny`` runs the same path (the same workers and rounds) at tiny shapes, on CPU unless a
GPU is present, so the test suite knows the script works; its figures mean nothing.

    python benchmarks/gpu.py [--layers 4] [--batch 4] [--rounds 5] [--tiny]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

from interleave import Spread, ratios, verdict  # noqa: E402
from mfu import shapes_flops, utilisation  # noqa: E402
from train_throughput import SIZES, Shapes, num_patches  # noqa: E402
from worker import measure  # noqa: E402

RESULTS = Path(__file__).parent / "results"
# Dense bf16 tensor-core peaks (no sparsity), FLOP/s, by a name the device's name contains.
GPU_PEAKS = {"H100": 989e12, "H200": 989e12, "B200": 2250e12, "A100": 312e12,
             "L40S": 362e12, "A10": 125e12, "L4": 121e12}


def shapes_7b(layers: int) -> Shapes:
    vision = dict(image_size=336, patch_size=14, hidden_size=1024, num_hidden_layers=24,
                  num_attention_heads=16, intermediate_size=4096)
    text = dict(vocab_size=32000, hidden_size=4096, num_hidden_layers=layers,
                num_attention_heads=32, num_key_value_heads=32, intermediate_size=11008,
                max_position_embeddings=4096)
    return vision, text, 512  # 576 visual + 512 text tokens, a typical stage-2 sample


def attention_kinds(device: torch.device) -> list[str]:
    kinds = ["sdpa"]
    if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        kinds.append("flash_attention_2")
    return kinds


def device_peak(device: torch.device, peak_tflops: float | None) -> tuple[float | None, str]:
    """The dense bf16 peak in FLOP/s and where it came from; None: measure it per round."""
    if peak_tflops is not None:
        return peak_tflops * 1e12, "--peak-tflops"
    if device.type == "cuda":
        name = torch.cuda.get_device_name()
        for key, flops in GPU_PEAKS.items():
            if key in name:
                return flops, f"{name} dense bf16 peak"
    return None, "this device's bf16 matmul rate, measured in the same rounds"


def measure_attention(shapes: Shapes, batch: int, steps: int, rounds: int, attn: str,
                      device: str, peak: float | None) -> dict[str, Any]:
    """One attention implementation: interleaved ours / HF (/ matmul) rounds, one worker each."""
    args = (shapes, batch, steps, device, "bf16", attn)
    specs: dict[str, tuple[Any, ...]] = {
        impl: ("train_throughput:StepJob", impl, *args) for impl in ("ours", "hf")}
    if peak is None:
        specs["matmul"] = ("mfu:MatmulJob", device, "bfloat16", 4096 if device == "cuda" else 256)
    seconds, generation_infos = measure(specs, rounds)
    infos = generation_infos[-1]
    flops = shapes_flops(shapes, batch)
    peak_s = seconds.get("matmul")
    peak_flops = infos["matmul"]["flops"] if peak_s else peak
    return {
        "attn": attn, "speed": ratios(seconds["hf"], seconds["ours"]),
        "mfu": utilisation(seconds["ours"], steps, flops, peak_s, peak_flops),
        "mfu_hf": utilisation(seconds["hf"], steps, flops, peak_s, peak_flops),
        "step_s": sorted(seconds["ours"])[rounds // 2] / steps,
        "ours_mib": infos["ours"]["peak_mib"], "hf_mib": infos["hf"]["peak_mib"],
        "params_m": infos["ours"]["params_m"], "seq": infos["ours"]["seq"],
    }


def rows_of(results: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in results:
        speed: Spread = r["speed"]
        mfu: Spread = r["mfu"]
        memory = r["ours_mib"] / r["hf_mib"]
        rows.append([
            r["attn"], f"{r['step_s'] * 1e3:.0f} ms", speed.text(), verdict(speed, 1.0),
            mfu.text("%", 0), f"{r['mfu_hf'].median:.0%}",
            f"{r['ours_mib']:.0f} / {r['hf_mib']:.0f} MiB ({memory:.3f}x)",
            "met" if memory <= 1.0 else "not met",
        ])
    return rows


HEADERS = ["attention", "step", "speed ours/HF [IQR]", ">= 1.0x", "MFU [IQR]", "HF MFU",
           "peak memory ours / HF", "<= 1.0x"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4, help="decoder layers of Vicuna-7B's 32")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (runs on CPU)")
    parser.add_argument("--out", type=Path, default=None, help="write the table here")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" and not args.tiny:
        parser.error("no GPU here: only --tiny runs on CPU")
    shapes = SIZES["tiny"] if args.tiny else shapes_7b(args.layers)
    peak, source = device_peak(device, args.peak_tflops)
    results = [measure_attention(shapes, args.batch, args.steps, args.rounds, attn, device.type,
                                 peak) for attn in attention_kinds(device)]

    from llava_kit.train.report import render_table

    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    shape = "tiny shapes" if args.tiny else f"LLaVA-1.5-7B shapes, {args.layers} decoder layers"
    title = (f"Stage-2 step, {shape} ({results[0]['params_m']:.0f}M params), batch {args.batch} "
             f"x {results[0]['seq']} tokens ({num_patches(shapes)} visual), bf16 autocast, {name}")
    text = (f"# {title}\n\n{render_table(HEADERS, rows_of(results))}\n\nPeak: {source}. "
            f"{args.steps} steps per round; memory: tensors held across steps plus one step's "
            f"high-water mark.\n")
    print(text)
    print(json.dumps([{"attn": r["attn"], "speed": r["speed"].median, "mfu": r["mfu"].median,
                       "ours_mib": r["ours_mib"], "hf_mib": r["hf_mib"]} for r in results]))
    out = args.out or (None if args.tiny else
                       RESULTS / f"gpu-{datetime.date.today().isoformat()}.md")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"saved {out}")


if __name__ == "__main__":
    main()
