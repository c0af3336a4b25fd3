"""Every llava-kit benchmark in one command; writes benchmarks/results/<date>.md.

Each figure stands beside its peer from the same run (same machine, same load), as a
ratio against the target. The benchmarks run one after another as child processes of this
one, so none inherits another's allocator state or threads.

    python benchmarks/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

DEMO_RECIPE = ROOT / "recipes" / "demo" / "scienceqa_tiny.yaml"
# Torch threads per benchmark process (set before torch loads). On a machine shared with
# other jobs one thread avoids oversubscription; the MFU peak is measured with the same.
THREADS = os.environ.get("LLAVA_KIT_BENCH_THREADS", "1")


# ------------------------------------------------------------------ child jobs
def _demo_recipe(stage: str, overrides: dict[str, Any], runtime: dict[str, Any]) -> Any:
    """The demo recipe with only ``stage`` enabled, one epoch, and the given changes."""
    import yaml

    from llava_kit.recipes import validate_recipe

    raw = yaml.safe_load(DEMO_RECIPE.read_text())
    for name in raw["stages"]:
        raw["stages"][name]["enabled"] = name == stage
    raw["stages"][stage].update(epochs=1, **overrides)
    raw["runtime"].update(device="cpu", **runtime)
    raw.pop("eval", None)
    return validate_recipe(raw)


def run_stage(recipe: Any, stage: str, run_dir: Path) -> dict[str, Any]:
    """Build the demo model and train one stage; wall time includes data and cache work."""
    import torch

    from llava_kit.model.build import build_model
    from llava_kit.train.distributed import DistributedContext
    from llava_kit.train.metrics import MetricsLogger, read_metrics
    from llava_kit.train.context import RunContext
    from llava_kit.train.run_dir import RunDir
    from llava_kit.train.runner import StageRunner

    torch.manual_seed(recipe.runtime.seed)
    model = build_model(recipe.model)
    ctx = RunContext(
        recipe=recipe, run_dir=run_dir, dist=DistributedContext(0, 1, 0, "cpu"),
        device=torch.device("cpu"), precision="fp32",
        metrics=MetricsLogger(RunDir(run_dir).metrics), resume=False,
    )
    start = time.perf_counter()
    summary = StageRunner(ctx, model, stage, recipe.stages[stage], None).run()
    wall = time.perf_counter() - start
    records = [r for r in read_metrics(RunDir(run_dir).metrics) if "loss" in r]
    return {"wall_s": wall, "train_s": summary.seconds, "samples_per_s": summary.samples_per_s,
            "steps": summary.steps, "pad": records[-1]["epoch_pad_fraction"],
            "final_loss": summary.final_loss}


def job_stage2_epoch(grouped: bool) -> dict[str, Any]:
    batch = {"global_size": 16, "micro_size": 16, "group_by_length": grouped}
    recipe = _demo_recipe("finetune", {"batch": batch}, {})
    with tempfile.TemporaryDirectory() as tmp:
        return run_stage(recipe, "finetune", Path(tmp))


def job_stage1_cache(cache: str | None) -> dict[str, Any]:
    recipe = _demo_recipe("pretrain", {}, {"feature_cache": cache})
    with tempfile.TemporaryDirectory() as tmp:
        return run_stage(recipe, "pretrain", Path(tmp))


def job_data_loading() -> dict[str, Any]:
    """Samples/s of dataset + collator alone (images loaded and preprocessed, no model)."""
    from torch.utils.data import DataLoader

    from llava_kit.data.collate import Collator
    from llava_kit.data.dataset import ConversationDataset, tokenize_samples
    from llava_kit.model.build import build_model, build_template, instantiate

    recipe = _demo_recipe("finetune", {}, {})
    model = build_model(recipe.model)
    stage = recipe.stages["finetune"]
    samples = instantiate(stage.data).load()
    tokenized = tokenize_samples(samples, build_template(recipe.model.template, model.tokenizer), model.tokenizer)
    dataset = ConversationDataset(tokenized, model.encoder.preprocess)
    collator = Collator(model.num_visual_tokens, model.tokenizer.pad_token_id,
                        recipe.model.max_length, "right")
    loader = DataLoader(dataset, batch_size=16, collate_fn=collator, num_workers=0)
    start = time.perf_counter()
    count = sum(len(batch["ids"]) for batch in loader)
    return {"samples_per_s": count / (time.perf_counter() - start), "samples": count}


def job_eval(limit: int) -> dict[str, Any]:
    """Questions/s: batched generation (16), one question at a time, and score mode."""
    import torch

    from llava_kit.data.formats.scienceqa import ScienceQAFormat, ScienceQAOptions
    from llava_kit.evaluators.answer_scoring import score_answers
    from llava_kit.evaluators.generation import PromptItem, generate_answers
    from llava_kit.model.build import build_model, build_template

    recipe = _demo_recipe("finetune", {}, {})
    torch.manual_seed(0)
    model = build_model(recipe.model).eval()
    template = build_template(recipe.model.template, model.tokenizer)
    samples = ScienceQAFormat(ScienceQAOptions(
        root=str(ROOT / "demo_data/scienceqa"), split="test", prompt_format="QCM-A", limit=limit,
    )).load()
    prompts = [PromptItem(s.id, s.messages[:-1], s.images) for s in samples]
    rates: dict[str, Any] = {"questions": len(prompts)}
    runs: dict[str, Callable[[], dict[str, str]]] = {
        "batch16": lambda: generate_answers(model, template, prompts, batch_size=16,
                                            max_new_tokens=8, progress=False),
        "batch1": lambda: generate_answers(model, template, prompts, batch_size=1,
                                           max_new_tokens=8, progress=False),
        "score16": lambda: score_answers(model, template, prompts,
                                         {s.id: len(s.meta["choices"]) for s in samples},
                                         batch_size=16),
    }
    outputs = {}
    for name, run in runs.items():
        start = time.perf_counter()
        outputs[name] = run()
        rates[name] = len(prompts) / (time.perf_counter() - start)
    rates["batch_invariant"] = outputs["batch16"] == outputs["batch1"]
    return rates


def job_train_step(size: str, steps: int) -> dict[str, Any]:
    from train_throughput import run_child

    ours, hf = (run_child(impl, size, 4, steps) for impl in ("ours", "hf"))
    return {"ours": ours, "hf": hf}


def job_mfu(size: str, steps: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(HERE / "mfu.py"), "--size", size, "--steps", str(steps)],
                         capture_output=True, text=True, check=True, env=os.environ)
    return json.loads(out.stdout.strip().splitlines()[-1])


JOBS: dict[str, Callable[..., dict[str, Any]]] = {
    "stage2_epoch": job_stage2_epoch, "stage1_cache": job_stage1_cache,
    "data_loading": job_data_loading, "eval": job_eval, "train_step": job_train_step,
    "mfu": job_mfu,
}


def child(job: str, *args: Any) -> dict[str, Any]:
    """Run one job in a fresh Python process; returns its JSON result."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", job, json.dumps(args)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": THREADS},
    )
    if out.returncode:
        raise RuntimeError(f"benchmark {job}{args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------- report
def verdict(value: float, target: float) -> str:
    return "met" if value >= target else "NOT met"


def collect(quick: bool) -> tuple[list[list[str]], list[str]]:
    rows: list[list[str]] = []
    notes: list[str] = []
    steps = 2 if quick else 3

    for size in ("tiny", "100m"):
        r = child("train_step", size, steps)
        ours, hf = r["ours"], r["hf"]
        speed = ours["samples_per_s"] / hf["samples_per_s"]
        memory = ours["peak_mib"] / hf["peak_mib"]
        rows.append([
            f"stage-2 train step, {size} ({ours['params_m']:.0f}M params), samples/s",
            f"{ours['samples_per_s']:.2f} (peak {ours['peak_mib']:.0f} MiB)",
            f"HF LlavaForConditionalGeneration {hf['samples_per_s']:.2f} (peak {hf['peak_mib']:.0f} MiB)",
            f"{speed:.2f}x speed, {memory:.2f}x memory", ">= 1.0x, <= 1.0x",
            "met" if speed >= 1.0 and memory <= 1.0 else "NOT met",
        ])

    grouped, plain = child("stage2_epoch", True), child("stage2_epoch", False)
    ratio = plain["wall_s"] / grouped["wall_s"]
    rows.append([
        "demo stage 2, one epoch, wall s",
        f"{grouped['wall_s']:.1f} s grouped, padding {grouped['pad']:.1%}",
        f"{plain['wall_s']:.1f} s random batches, padding {plain['pad']:.1%}",
        f"{ratio:.2f}x", ">= 1.3x, padding <= 10%",
        "met" if ratio >= 1.3 and grouped["pad"] <= 0.10 else "NOT met",
    ])

    cache_dir = Path(tempfile.mkdtemp(prefix="llava_kit_feature_cache_"))
    try:
        nocache = child("stage1_cache", None)
        cold = child("stage1_cache", str(cache_dir))
        warm = child("stage1_cache", str(cache_dir))
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    ratio = nocache["wall_s"] / warm["wall_s"]
    rows.append([
        "demo stage 1 (one epoch) with the feature cache, 2nd grid cell, wall s",
        f"{warm['wall_s']:.1f} s warm cache (1st cell, filling it: {cold['wall_s']:.1f} s)",
        f"{nocache['wall_s']:.1f} s without cache", f"{ratio:.2f}x", ">= 1.5x",
        verdict(ratio, 1.5),
    ])
    if not (warm["final_loss"] == cold["final_loss"] == nocache["final_loss"]):
        notes.append("WARNING: stage-1 final losses differ with and without the cache.")

    ev = child("eval", 48 if quick else 96)
    ratio = ev["batch16"] / ev["batch1"]
    rows.append([
        f"ScienceQA evaluation ({ev['questions']} questions), questions/s",
        f"{ev['batch16']:.1f} batch 16 (score mode: {ev['score16']:.1f})",
        f"{ev['batch1']:.1f} one at a time", f"{ratio:.2f}x (score mode {ev['score16'] / ev['batch1']:.1f}x)",
        ">= 4x", verdict(ratio, 4.0),
    ])
    if not ev["batch_invariant"]:
        notes.append("WARNING: batch-16 and batch-1 generations differ.")

    loading = child("data_loading")
    ratio = loading["samples_per_s"] / grouped["samples_per_s"]
    rows.append([
        "data loading + preprocessing (demo stage 2), samples/s",
        f"{loading['samples_per_s']:.0f}", f"training consumes {grouped['samples_per_s']:.0f}",
        f"{ratio:.1f}x", ">= 3x", verdict(ratio, 3.0),
    ])

    mfu = child("mfu", "100m", steps)
    rows.append([
        f"model-FLOPs utilisation, ~100M stage-2 step (batch {mfu['batch']}, {mfu['seq']} tokens)",
        f"{mfu['achieved_gflops']:.1f} GFLOP/s", f"{mfu['peak_gflops']:.1f} GFLOP/s ({mfu['peak_source']})",
        f"{mfu['mfu']:.0%}", ">= 60%", verdict(mfu["mfu"], 0.60),
    ])
    return rows, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and questions")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="?", default="[]", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(JOBS[options.child](*json.loads(options.args))))
        return

    import torch

    from llava_kit.train.report import render_table

    started = time.perf_counter()
    rows, notes = collect(options.quick)
    minutes = (time.perf_counter() - started) / 60
    device = (f"cuda: {torch.cuda.get_device_name()}" if torch.cuda.is_available()
              else f"cpu ({os.cpu_count()} cores, {THREADS} torch thread(s) per benchmark)")
    headers = ["benchmark", "llava-kit", "peer (same run)", "ratio", "target", "verdict"]
    stamp = datetime.date.today().isoformat()
    text = (
        f"# llava-kit benchmarks, {stamp}\n\n{device}; `python benchmarks/run_all.py"
        f"{' --quick' if options.quick else ''}` took {minutes:.1f} min.\n\n"
        + render_table(headers, rows) + ("\n" + "\n".join(notes) + "\n" if notes else "")
    )
    out = HERE / "results" / f"{stamp}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(text)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
