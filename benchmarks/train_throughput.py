"""Stage-2 training step: llava-kit's model against transformers' LlavaForConditionalGeneration.

Same weights, same batch, same optimizer (AdamW over connector + LLM, frozen encoder). Each
implementation lives in its own worker process (peak memory is not confounded) and the two
are timed in alternating rounds (``interleave.py``): the table reports the median speed
ratio with its inter-quartile range, and peak tensor memory side by side.

    python benchmarks/train_throughput.py [--sizes tiny,100m] [--steps 5] [--rounds 7]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the memory profiler's start/stop chatter
sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

from interleave import Spread, cpu_seconds, ratios, verdict  # noqa: E402
from worker import Job, measure  # noqa: E402

RESULTS = Path(__file__).parent / "results"
# (vision config, text config, text tokens per sample)
Shapes = tuple[dict[str, Any], dict[str, Any], int]
SIZES: dict[str, Shapes] = {
    "tiny": (dict(image_size=64, patch_size=8, hidden_size=64, num_hidden_layers=3,
                  num_attention_heads=4, intermediate_size=128),
             dict(vocab_size=1000, hidden_size=128, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=4, intermediate_size=256), 64),
    "100m": (dict(image_size=224, patch_size=16, hidden_size=384, num_hidden_layers=6,
                  num_attention_heads=6, intermediate_size=1536),
             dict(vocab_size=32000, hidden_size=768, num_hidden_layers=8, num_attention_heads=12,
                  num_key_value_heads=12, intermediate_size=2048), 188),
}
IMAGE_TOKEN = 3  # HF's placeholder id; ours uses IMAGE_TOKEN_ID at the same positions


def num_patches(shapes: Shapes) -> int:
    vision = shapes[0]
    return (vision["image_size"] // vision["patch_size"]) ** 2


def build(impl: str, shapes: Shapes, attn: str = "sdpa") -> torch.nn.Module:
    """HF Llava (``hf``) or our LlavaModel (``ours``) with the same weights, on the default device."""
    from transformers import (
        CLIPVisionConfig, LlamaConfig, LlamaForCausalLM, LlavaConfig,
        LlavaForConditionalGeneration, PreTrainedTokenizerFast,
    )
    from tokenizers import Tokenizer, models

    from llava_kit.connectors.mlp import MLPConnector
    from llava_kit.encoders.hf_clip import HFCLIPEncoder
    from llava_kit.model.vlm import LlavaModel

    vision, text, _ = shapes
    torch.manual_seed(0)
    hf = LlavaForConditionalGeneration(LlavaConfig(
        vision_config=CLIPVisionConfig(**vision, attn_implementation=attn),
        text_config=LlamaConfig(**text, attn_implementation=attn),
        image_token_index=IMAGE_TOKEN, image_seq_length=num_patches(shapes),
        projector_hidden_act="gelu", vision_feature_layer=-2,
    ))
    if impl == "hf":
        return hf
    encoder = HFCLIPEncoder(HFCLIPEncoder.Options(config=vision))
    encoder.tower.config._attn_implementation = attn
    encoder.tower.load_state_dict(hf.model.vision_tower.state_dict())
    llm = LlamaForCausalLM(LlamaConfig(**text, attn_implementation=attn))
    llm.model.load_state_dict(hf.model.language_model.state_dict())
    llm.lm_head.load_state_dict(hf.lm_head.state_dict())
    connector = MLPConnector(MLPConnector.Options(depth=2), vision["hidden_size"], text["hidden_size"])
    connector.proj[0].load_state_dict(hf.model.multi_modal_projector.linear_1.state_dict())
    connector.proj[2].load_state_dict(hf.model.multi_modal_projector.linear_2.state_dict())
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<pad>": 0}, "<pad>")))
    tokenizer.pad_token = "<pad>"
    return LlavaModel(encoder, connector, llm, tokenizer)


def make_batch(impl: str, shapes: Shapes, batch: int) -> dict[str, torch.Tensor]:
    """One image per sample, half of each sample's text trained; the same ids for both."""
    from llava_kit.constants import IGNORE_INDEX, IMAGE_TOKEN_ID

    vision, text, text_len = shapes
    patches = num_patches(shapes)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(10, text["vocab_size"], (batch, text_len + patches), generator=g)
    ids[:, 1:1 + patches] = IMAGE_TOKEN_ID
    labels = ids.clone()
    labels[:, : 1 + patches + text_len // 2] = IGNORE_INDEX
    if impl == "hf":
        ids = ids.masked_fill(ids == IMAGE_TOKEN_ID, IMAGE_TOKEN)
    side = vision["image_size"]
    return {
        "input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids),
        "pixel_values": torch.randn(batch, 3, side, side, generator=g),
    }


def peak_step_mib(step: Callable[[], None], held: Iterable[torch.Tensor], device: torch.device) -> float:
    """Peak tensor memory of one step: the tensors held across steps plus its high-water mark.

    On CUDA the allocator's own statistics; on CPU the profiler's allocation record, which
    (unlike peak RSS: pages, libraries, allocator slack) is the same from run to run.
    """
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    from torch.profiler import ProfilerActivity, profile

    base = sum(t.numel() * t.element_size() for t in held)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return (base + peak) / 2**20


class StepJob(Job):
    """``steps`` optimizer steps of one implementation per round (frozen encoder).

    ``precision`` bf16 runs the step under bf16 autocast over fp32 weights, as llava-kit's
    ``runtime.precision: bf16`` does. Building it takes two untimed steps (optimizer state,
    then the memory measurement), so it needs no warm-up round.
    """

    def __init__(self, impl: str, shapes: Shapes, batch: int, steps: int,
                 device: str = "cpu", precision: str = "fp32", attn: str = "sdpa") -> None:
        self.device = torch.device(device)
        with self.device:  # built where it runs: 7B-shaped layers initialise fast on a GPU
            self.model = build(impl, shapes, attn)
        frozen = self.model.model.vision_tower if impl == "hf" else self.model.encoder
        self.model.train()
        frozen.requires_grad_(False).eval()
        self.data = {k: v.to(self.device) for k, v in make_batch(impl, shapes, batch).items()}
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=1e-5, fused=self.device.type == "cuda")
        self.autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16)
                         if precision == "bf16" else contextlib.nullcontext())
        self.steps, self.batch = steps, batch
        self.step()  # optimizer state exists before anything is measured
        state = [t for s in self.optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
        held = [*self.model.parameters(), *self.model.buffers(), *state, *self.data.values()]
        self.peak_mib = peak_step_mib(self.step, held, self.device)

    def step(self) -> None:
        with self.autocast:
            loss = self.model(**self.data).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def run(self) -> float:
        if self.device.type != "cuda":
            start = cpu_seconds()
            for _ in range(self.steps):
                self.step()
            return cpu_seconds() - start
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(self.steps):
            self.step()
        torch.cuda.synchronize()
        return time.perf_counter() - start

    def info(self) -> dict[str, Any]:
        return {"peak_mib": self.peak_mib,
                "params_m": sum(p.numel() for p in self.model.parameters()) / 1e6,
                "seq": self.data["input_ids"].shape[1], "samples": self.batch * self.steps}


def compare(size: str, batch: int, steps: int, rounds: int) -> dict[str, Any]:
    """Ours against HF at one size: speed spread (HF time / ours) and both peaks."""
    shapes = SIZES[size]
    seconds, infos = measure(
        {impl: ("train_throughput:StepJob", impl, shapes, batch, steps) for impl in ("ours", "hf")},
        rounds)
    return {"speed": ratios(seconds["hf"], seconds["ours"]), "seconds": seconds, **infos[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,100m")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    from llava_kit.train.report import print_table, render_table

    rows = []
    for size in args.sizes.split(","):
        r = compare(size, args.batch, args.steps, args.rounds)
        speed: Spread = r["speed"]
        memory = r["ours"]["peak_mib"] / r["hf"]["peak_mib"]
        rows.append([
            size, f"{r['ours']['params_m']:.1f}M", speed.text(), verdict(speed, 1.0),
            f"{r['ours']['peak_mib']:.0f}", f"{r['hf']['peak_mib']:.0f}", f"{memory:.3f}x",
        ])
    headers = ["size", "params", "speed ours/HF [IQR]", "speed >= 1.0x", "ours peak MiB",
               "HF peak MiB", "memory ours/HF"]
    device = f"cpu ({os.cpu_count()} cores)"
    title = (f"Stage-2 train step, {device}, batch {args.batch}, {args.steps} steps per round, "
             f"{args.rounds} interleaved rounds")
    print_table(title, headers, rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"train_throughput-{datetime.date.today().isoformat()}.md"
    out.write_text(f"# {title}\n\n{render_table(headers, rows)}\n\nPeak memory: tensors held "
                   f"across steps plus one step's high-water mark.\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
