"""Data at LLaVA-1.5 scale: time to the first training step and memory per process, with the
token store against the reference's way (json.load, then tokenizing in ``__getitem__``).

A synthetic ``llava_json`` file shaped like llava_v1_5_mix665k (one image and 1-10 turns of
questions with short or long answers; 6% long text-only conversations; about 700 tokens per
sample) is read with a 32k-vocabulary BPE tokenizer by a tiny model (its compute is not what
is measured). For each size:

- cold / warm: ``llava-kit run`` from launch to the end of the first optimizer step, with an
  empty token-store folder, then again with the store that run left (the data check and the
  dataset included); peak RSS of the training process, and of its DataLoader worker;
- baseline: a reference-style script in the same run: ``json.load`` of the whole file, lazy
  tokenization in ``__getitem__``, the same model, loader and first step;
- build with 1 and with 2 processes (the store alone, data read included);
- one loader worker after a pass over every sample (the reference's worker copies the
  Python objects it touches: private dirty memory; the store's worker shares the page cache);
- the store's size on disk.

    python benchmarks/data_scale.py [--sizes 10000,30000,100000] [--work DIR]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = Path(__file__).parent / "results"
VOCAB = 32000
IMAGES = 256
TEXT_ONLY = 0.06
MICRO, GLOBAL = 1, 2

# ---------------------------------------------------------------------------- synthetic data


class Words:
    """A made-up language with a Zipf-distributed vocabulary, as natural text has."""

    def __init__(self, seed: int = 0) -> None:
        rng = random.Random(seed)
        syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou", "ee")]
        words = {"".join(rng.choice(syllables) for _ in range(rng.choice((1, 2, 2, 3, 3, 4))))
                 for _ in range(20000)}
        self.words = sorted(words)
        rng.shuffle(self.words)
        self.cumulative = []
        total = 0.0
        for rank in range(len(self.words)):
            total += 1.0 / (rank + 1)
            self.cumulative.append(total)

    def text(self, rng: random.Random, count: int) -> str:
        return " ".join(rng.choices(self.words, cum_weights=self.cumulative, k=count))


def make_tokenizer(work: Path, words: Words) -> Path:
    folder = work / "tokenizer"
    if not (folder / "tokenizer.json").is_file():
        from llava_kit.tiny.tokenizer import train_tokenizer

        rng = random.Random(1)
        train_tokenizer([words.text(rng, 200) + "." for _ in range(5000)], folder, vocab_size=VOCAB)
    return folder


def make_images(work: Path) -> Path:
    folder = work / "images"
    if not folder.is_dir():
        from PIL import Image

        folder.mkdir(parents=True)
        for index in range(IMAGES):
            Image.new("RGB", (64, 48), (index, 255 - index, (7 * index) % 256)).save(folder / f"{index}.png")
    return folder


def make_data(work: Path, words: Words, size: int) -> Path:
    path = work / f"mix-{size}.json"
    if path.is_file():
        return path
    rng = random.Random(size)
    records = []
    for index in range(size):
        record: dict[str, Any] = {"id": f"{index:09d}"}
        if rng.random() < TEXT_ONLY:
            turns = [(words.text(rng, rng.randint(20, 60)) + "?", words.text(rng, rng.randint(150, 400)) + ".")
                     for _ in range(rng.randint(4, 8))]
        else:
            record["image"] = f"{rng.randrange(IMAGES)}.png"
            turns = [(words.text(rng, rng.randint(8, 16)) + "?",
                      words.text(rng, rng.randint(1, 4) if rng.random() < 0.4 else rng.randint(60, 200)) + ".")
                     for _ in range(rng.randint(1, 10))]
            turns[0] = ("<image>\n" + turns[0][0], turns[0][1])
        record["conversations"] = [
            turn for question, answer in turns
            for turn in ({"from": "human", "value": question}, {"from": "gpt", "value": answer})
        ]
        records.append(record)
    path.write_text(json.dumps(records))
    return path


def recipe(work: Path, data: Path, tokenizer: Path, store: Path) -> dict[str, Any]:
    from llava_kit.tiny.recipe import tiny_recipe

    raw = tiny_recipe(work)
    raw["model"]["llm"]["tokenizer"] = str(tokenizer)
    raw["model"]["llm"]["config"]["max_position_embeddings"] = 2048
    raw["model"]["max_length"] = 2048
    raw["stages"]["pretrain"]["enabled"] = False
    raw["stages"]["finetune"].update(
        data={"format": "llava_json", "path": str(data), "image_root": str(work / "images")},
        trainable=["connector"], batch={"global_size": GLOBAL, "micro_size": MICRO},
    )
    raw["runtime"].update(num_workers=1, token_store=str(store))
    return raw


# ------------------------------------------------------------------------ measured children

# Run first in a `llava-kit run` child: phase times, then the first optimizer step's end,
# the process's peak RSS and its loader worker's memory, written to $BENCH_OUT; then exit.
_RUN_PATCH = r'''
import json, os, time
T0 = float(os.environ["BENCH_T0"])
import llava_kit.train.backend as _backend
import llava_kit.train.run as _run
import llava_kit.train.stage_setup as _setup
marks = {"imported": time.time() - T0}

def _timed(module, name):
    real = getattr(module, name)
    def timed(*args, **kwargs):
        start = time.time()
        out = real(*args, **kwargs)
        marks[name] = time.time() - start
        return out
    setattr(module, name, timed)

_timed(_run, "preflight")
_timed(_setup, "stage_dataset")
_dataset = _setup.stage_dataset
def _ready(*args, **kwargs):
    out = _dataset(*args, **kwargs)
    marks["rss_data_ready"] = _status("self", "VmRSS")
    return out
_setup.stage_dataset = _ready
_step = _backend.PlainBackend.step
def _first_step(self):
    out = _step(self)
    marks["first_step"] = time.time() - T0
    marks.update(memory())
    with open(os.environ["BENCH_OUT"], "w") as handle:
        json.dump(marks, handle)
    os._exit(0)
_backend.PlainBackend.step = _first_step
'''

# Both children report memory the same way: the process's peak RSS, and each child's RSS
# and private dirty memory (what a forked worker holds that it shares with no one).
_MEMORY = r'''
import psutil

def _status(pid, field):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0

def _private_dirty(pid):
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            if line.startswith("Private_Dirty:"):
                return int(line.split()[1]) * 1024
    return 0

def memory():
    workers = psutil.Process().children()
    return {"peak_rss": _status("self", "VmHWM"),
            "workers": [{"rss": _status(w.pid, "VmRSS"), "private_dirty": _private_dirty(w.pid)}
                        for w in workers]}
'''

# The reference's way: the whole JSON list in memory, a sample rendered and tokenized when
# the loader asks for it; the same model, loader settings and first step as the run.
_BASELINE = r'''
import json, os, sys, time
T0 = float(os.environ["BENCH_T0"])
import torch, yaml
from torch.utils.data import DataLoader, Dataset, RandomSampler
from llava_kit.data.collate import Collator
from llava_kit.data.images import load_image
from llava_kit.model.build import build_model, build_template
from llava_kit.recipes import validate_recipe
from llava_kit.templates.base import Message
from llava_kit.templates.tokenize import tokenize_conversation
marks = {"imported": time.time() - T0}
recipe = validate_recipe(yaml.safe_load(open(sys.argv[1])))
stage = recipe.stages["finetune"]
torch.manual_seed(0)
model = build_model(recipe.model)
template = build_template(recipe.model.template, model.tokenizer)
start = time.time()
records = json.load(open(stage.data.options.path))
marks["json_load"] = time.time() - start
marks["rss_data_ready"] = _status("self", "VmRSS")
ROLES = {"human": "user", "gpt": "assistant"}
image_root = stage.data.options.image_root

class LazyDataset(Dataset):
    def __len__(self):
        return len(records)
    def __getitem__(self, index):
        record = records[index]
        messages = [Message(ROLES[t["from"]], t["value"]) for t in record["conversations"]]
        tokens = tokenize_conversation(template.render(messages), model.tokenizer, sample_id=record["id"])
        example = {"id": record["id"], "input_ids": tokens.input_ids, "labels": tokens.labels}
        if "image" in record:
            image = load_image(os.path.join(image_root, record["image"]), sample_id=record["id"])
            example["pixel_values"] = model.encoder.preprocess(image)[None]
        return example

loader = DataLoader(LazyDataset(), batch_size=MICRO, sampler=RandomSampler(records, generator=torch.Generator().manual_seed(0)),
                    collate_fn=Collator(model.num_visual_tokens, model.tokenizer.pad_token_id, recipe.model.max_length),
                    num_workers=1)
for p in model.parameters():
    p.requires_grad_(False)
for p in model.connector.parameters():
    p.requires_grad_(True)
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
batches = iter(loader)
for _ in range(GLOBAL // MICRO):
    batch = next(batches)
    batch.pop("ids")
    (model(**batch).loss / (GLOBAL // MICRO)).backward()
optimizer.step()
marks["first_step"] = time.time() - T0
marks.update(memory())
json.dump(marks, open(os.environ["BENCH_OUT"], "w"))
os._exit(0)
'''

# One loader worker over every sample, each one touched as __getitem__ would touch it
# (the store: its tokens read; the reference: its record read, without tokenizing, which
# would take minutes and adds nothing to what is copied). Reports the worker's memory.
_PASS = r'''
import json, os, sys
import torch
from torch.utils.data import DataLoader, Dataset
kind, target = sys.argv[1], sys.argv[2]
if kind == "store":
    from llava_kit.data.token_store import TokenStore
    rows = TokenStore(__import__("pathlib").Path(target)).rows()
    touch = lambda i: len(rows.tokens(i)[0])
    count = len(rows)
else:
    records = json.load(open(target))
    touch = lambda i: sum(len(t["value"]) for t in records[i]["conversations"]) + len(records[i].get("image", ""))
    count = len(records)

class Touch(Dataset):
    def __len__(self):
        return count
    def __getitem__(self, index):
        return touch(index)

batches = [list(range(start, min(start + 512, count))) for start in range(0, count, 512)]
def collate(items):
    return sum(items)
loader = DataLoader(Touch(), batch_sampler=batches, collate_fn=collate, num_workers=1, prefetch_factor=1)
seen = iter(loader)
for _ in range(len(batches) - 1):
    next(seen)
report = memory()
next(seen)
json.dump(report, open(os.environ["BENCH_OUT"], "w"))
os._exit(0)
'''

# The store alone, built with a given number of processes into an empty folder.
_BUILD = r'''
import os, sys, time, yaml
from pathlib import Path
from llava_kit.data.sample_tokens import Placement
from llava_kit.data.token_store import StoreRequest, open_token_store
from llava_kit.datacheck.budget import load_tokenizer
from llava_kit.model.build import build_template, instantiate
from llava_kit.recipes import validate_recipe
from llava_kit.templates.fit import check_template_fits
recipe = validate_recipe(yaml.safe_load(open(sys.argv[1])))
processes, root = int(sys.argv[2]), Path(sys.argv[3])
stage = recipe.stages["finetune"]
tokenizer = load_tokenizer(recipe.model)
template = build_template(recipe.model.template, tokenizer)
check_template_fits(template, tokenizer)
request = StoreRequest((stage.data.name, stage.data.options.model_dump(mode="json")), instantiate(stage.data),
                       (recipe.model.template.name, {}), template, tokenizer, Placement(), "stages.finetune")
start = time.time()
store = open_token_store(request, root, processes=processes)
seconds = time.time() - start
tokens = int(store.token_offsets[-1])
print(f"BUILD {seconds} {tokens} {len(store)}")
'''


def _child(code: str, args: list[str], out: Path, timeout: float = 3600) -> dict[str, Any]:
    env = {**os.environ, "BENCH_OUT": str(out), "BENCH_T0": repr(time.time()), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    prelude = f"MICRO, GLOBAL = {MICRO}, {GLOBAL}\n{_MEMORY}\n"
    done = subprocess.run([sys.executable, "-c", prelude + code, *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=out.parent)
    if not out.is_file():
        raise RuntimeError(f"{args} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    result = json.loads(out.read_text())
    out.unlink()
    return result


def run_first_step(config: Path, work: Path, out: Path) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    launcher = ("import sys\n" + _RUN_PATCH + "\nfrom llava_kit.cli.app import main\n"
                "sys.argv = ['llava-kit', 'run', sys.argv[1], '--no-eval', '--output-dir', sys.argv[2]]\n"
                "main()\n")
    marks = _child(launcher, [str(config), str(out)], work / "marks.json")
    shutil.rmtree(out, ignore_errors=True)
    return marks


def baseline_first_step(config: Path, work: Path) -> dict[str, Any]:
    return _child(_BASELINE, [str(config)], work / "marks.json")


def worker_pass(kind: str, target: Path, work: Path) -> dict[str, Any]:
    return _child(_PASS, [kind, str(target)], work / "marks.json")


def build_seconds(config: Path, processes: int, root: Path) -> tuple[float, int, int]:
    shutil.rmtree(root, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _BUILD, str(config), str(processes), str(root)], env=env,
                          capture_output=True, text=True, timeout=7200)
    line = next((line for line in done.stdout.splitlines() if line.startswith("BUILD ")), None)
    if line is None:
        raise RuntimeError(f"build exited {done.returncode}:\n{done.stderr[-4000:]}")
    _, seconds, tokens, samples = line.split()
    return float(seconds), int(tokens), int(samples)


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


# ---------------------------------------------------------------------------------- report

def measure(size: int, work: Path, words: Words, tokenizer: Path,
            build_pair: bool = True) -> dict[str, Any]:
    import yaml

    data = make_data(work, words, size)
    store = work / f"tokens-{size}"
    shutil.rmtree(store, ignore_errors=True)
    config = work / f"recipe-{size}.yaml"
    config.write_text(yaml.safe_dump(recipe(work, data, tokenizer, store)))
    row: dict[str, Any] = {"size": size, "json_bytes": data.stat().st_size}
    print(f"[{size}] baseline", flush=True)
    row["baseline"] = baseline_first_step(config, work)
    print(f"[{size}] cold run", flush=True)
    row["cold"] = run_first_step(config, work, work / "run")
    print(f"[{size}] warm run", flush=True)
    row["warm"] = run_first_step(config, work, work / "run")
    row["store_bytes"] = sum(folder_bytes(p) for p in store.iterdir() if p.is_dir())
    stored = next(p for p in store.iterdir() if p.is_dir())
    print(f"[{size}] worker passes", flush=True)
    row["pass_store"] = worker_pass("store", stored, work)
    row["pass_baseline"] = worker_pass("json", data, work)
    from llava_kit.data.token_store import TokenStore

    opened = TokenStore(stored)
    row["tokens_per_sample"] = int(opened.token_offsets[-1]) / len(opened)
    for processes in (1, 2) if build_pair else ():
        print(f"[{size}] build with {processes} process(es)", flush=True)
        seconds, tokens, samples = build_seconds(config, processes, work / f"build-{processes}")
        row[f"build_{processes}"] = seconds
    shutil.rmtree(work / "build-1", ignore_errors=True)
    shutil.rmtree(work / "build-2", ignore_errors=True)
    print(json.dumps(row), flush=True)
    return row


def _mb(value: float) -> str:
    return f"{value / 2**20:,.0f}"


def _worker(marks: dict[str, Any], field: str) -> float:
    return max((w[field] for w in marks["workers"]), default=0)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| samples | JSON MB | tokens/sample | store MB | first step cold s | warm s | baseline s "
        "| check + dataset cold s | warm s | peak RSS cold MB | warm MB | baseline MB "
        "| worker RSS warm MB | baseline MB | worker private after a full pass: store MB | baseline MB "
        "| build 1 proc s | 2 procs s | speed-up |",
        "|" + " --- |" * 19,
    ]
    for r in rows:
        cold, warm, base = r["cold"], r["warm"], r["baseline"]
        lines.append(
            f"| {r['size']:,} | {_mb(r['json_bytes'])} | {r['tokens_per_sample']:.0f} | {_mb(r['store_bytes'])} "
            f"| {cold['first_step']:.1f} | {warm['first_step']:.1f} | {base['first_step']:.1f} "
            f"| {cold['preflight'] + cold['stage_dataset']:.1f} | {warm['preflight'] + warm['stage_dataset']:.1f} "
            f"| {_mb(cold['peak_rss'])} | {_mb(warm['peak_rss'])} | {_mb(base['peak_rss'])} "
            f"| {_mb(_worker(warm, 'rss'))} | {_mb(_worker(base, 'rss'))} "
            f"| {_mb(_worker(r['pass_store'], 'private_dirty'))} | {_mb(_worker(r['pass_baseline'], 'private_dirty'))} "
            + (f"| {r['build_1']:.1f} | {r['build_2']:.1f} | {r['build_1'] / r['build_2']:.2f}x |"
               if "build_1" in r else "| - | - | - |")
        )
    return "\n".join(lines)


def growth(rows: list[dict[str, Any]], pick: Any) -> float:
    """Bytes per sample between the smallest and the largest size."""
    first, last = rows[0], rows[-1]
    return (pick(last) - pick(first)) / (last["size"] - first["size"])


def append_data_memory(sizes: list[int], work: Path) -> None:
    """RSS of the training process once its data is ready, before the first step (whose
    activations depend on which samples it draws); the stores of a full run are reused."""
    lines = ["", "RSS once the data is ready, before the first step (warm store: after the data "
             "check and the stage's dataset; baseline: after json.load):", "",
             "| samples | store MB | baseline MB |", "| --- | --- | --- |"]
    ready = []
    for size in sizes:
        config = work / f"recipe-{size}.yaml"
        warm = run_first_step(config, work, work / "run")["rss_data_ready"]
        base = baseline_first_step(config, work)["rss_data_ready"]
        ready.append((size, warm, base))
        lines.append(f"| {size:,} | {_mb(warm)} | {_mb(base)} |")
    (first, warm0, base0), (last, warm1, base1) = ready[0], ready[-1]
    lines += ["", f"Growth per sample ({first:,} to {last:,}): store "
              f"{(warm1 - warm0) / (last - first) / 1024:.2f} KB, baseline "
              f"{(base1 - base0) / (last - first) / 1024:.2f} KB.", ""]
    result = RESULTS / f"data_scale-{datetime.date.today().isoformat()}.md"
    result.write_text(result.read_text() + "\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,30000,100000")
    parser.add_argument("--work", type=Path, default=None, help="Keep generated data here (reused).")
    parser.add_argument("--no-build-pair", action="store_true",
                        help="Leave out the store built alone with 1 and with 2 processes.")
    parser.add_argument("--label", default="", help="appended to the result file's name")
    parser.add_argument("--data-memory", action="store_true",
                        help="Only RSS once the data is ready (warm store vs json.load), appended "
                        "to the results of a full run in the same --work folder.")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="data-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    words = Words()
    tokenizer = make_tokenizer(work, words)
    make_images(work)
    (work / "scienceqa").mkdir(exist_ok=True)
    load = os.getloadavg()[0]
    if args.data_memory:
        append_data_memory(sizes, work)
        return
    rows = [measure(size, work, words, tokenizer, not args.no_build_pair) for size in sizes]
    date = datetime.date.today().isoformat()
    lines = [
        f"# Data at scale: time to first step and memory per process ({date})",
        "",
        f"Synthetic llava_json mix (1-10 turns, 6% long text-only), {VOCAB // 1000}k-vocabulary BPE tokenizer, "
        f"tiny model, one process with one DataLoader worker, micro batch {MICRO}, global batch {GLOBAL}; "
        f"{os.cpu_count()} cores, load average {load:.1f} at the start. One measurement per cell.",
        "",
        table(rows),
        "",
        "RSS once the data is ready, before the first step (warm store: after the data check and "
        "the stage's dataset; baseline: after json.load): " + "; ".join(
            f"{r['size']:,}: store {_mb(r['warm']['rss_data_ready'])} MB, baseline "
            f"{_mb(r['baseline']['rss_data_ready'])} MB" for r in rows) + ".",
        "",
    ]
    if len(rows) > 1:
        per_sample_warm = growth(rows, lambda r: r["warm"]["peak_rss"])
        per_sample_base = growth(rows, lambda r: r["baseline"]["peak_rss"])
        lines += [f"Peak RSS growth per sample (smallest to largest size): warm store "
                  f"{per_sample_warm / 1024:.2f} KB, baseline {per_sample_base / 1024:.2f} KB.", ""]
    text = "\n".join(lines)
    RESULTS.mkdir(exist_ok=True)
    result = RESULTS / f"data_scale-{date}{'-' + args.label if args.label else ''}.md"
    if result.exists():  # a table written by hand around earlier figures is never replaced
        raise SystemExit(f"{result} exists: choose another --label")
    result.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
