"""`llava-kit serve` under load: concurrent clients against one client at a time.

The server runs as its own process (``llava-kit serve`` on 127.0.0.1) on a llava-kit export
of the demo recipe's architecture (random weights: throughput does not depend on what the
weights say), and clients send greedy chat completions with one image each (synthetic
ScienceQA test questions, as data URLs):

- sequential: one client, the requests one after another;
- concurrent: C clients at once, the same requests shared between them.

Rounds alternate (sequential, then each concurrency, again and again) so that a change in
the shared machine's load hits both sides; each round's ratio is concurrent / sequential
requests per second, reported as the median over rounds with its spread. Every answer
must equal the one the first sequential round got for the same prompt: batching may not
lose or mix up answers. The table is printed and saved to
benchmarks/results/serve_load-<date>.md.

    python benchmarks/serve_load.py [--requests 64] [--clients 16 32] [--rounds 3] [--max-tokens 16]
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import yaml  # noqa: E402

from llava_kit.data.formats.scienceqa import ScienceQAFormat, ScienceQAOptions  # noqa: E402
from llava_kit.demo.synth_scienceqa import synth_scienceqa  # noqa: E402
from llava_kit.export.llava_kit_format import export_llava_kit  # noqa: E402
from llava_kit.model.build import build_model  # noqa: E402
from llava_kit.recipes import validate_recipe  # noqa: E402
from llava_kit.train.report import print_table, render_table  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DEMO_RECIPE = Path(__file__).resolve().parents[1] / "recipes/demo/scienceqa_tiny.yaml"
MODEL = "load"
# Torch threads of the server process (one: the machine is shared; see run_all.py).
THREADS = os.environ.get("LLAVA_KIT_BENCH_THREADS", "1")
TIMEOUT_S = 120.0


def demo_export(data: Path, out: Path) -> None:
    raw = yaml.safe_load(DEMO_RECIPE.read_text())
    raw["model"]["llm"]["tokenizer"] = str(data / "tokenizer")
    raw["runtime"].update(device="cpu", demo_data=None)
    raw.pop("eval", None)
    text = yaml.safe_dump(raw, sort_keys=False)
    torch.manual_seed(0)
    export_llava_kit(build_model(validate_recipe(raw).model).eval(), text, out)


def requests_for(data: Path, count: int, max_tokens: int) -> list[dict]:
    samples = ScienceQAFormat(ScienceQAOptions(
        root=str(data), split="test", prompt_format="QCM-A", limit=20 * count)).load()
    bodies = []
    for sample in (s for s in samples if s.images):
        url = "data:image/png;base64," + base64.b64encode(Path(sample.images[0]).read_bytes()).decode()
        question = sample.messages[0].content.replace("<image>", "").strip()
        bodies.append({"model": MODEL, "temperature": 0, "max_tokens": max_tokens, "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                         {"type": "text", "text": question}]}]})
        if len(bodies) == count:
            return bodies
    raise SystemExit(f"only {len(bodies)} test questions with an image; ask for fewer --requests")


def send(url: str, body: dict) -> tuple[str, float]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        reply = json.load(response)
    return reply["choices"][0]["message"]["content"], time.perf_counter() - start


def timed_round(url: str, bodies: list[dict], clients: int) -> tuple[list[str], list[float], float]:
    """Answers in request order, each request's latency, and the round's wall seconds."""
    start = time.perf_counter()
    if clients == 1:
        results = [send(url, body) for body in bodies]
    else:
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(lambda body: send(url, body), bodies))
    wall = time.perf_counter() - start
    return [answer for answer, _ in results], [latency for _, latency in results], wall


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def start_server(export: Path, port: int, max_batch: int) -> subprocess.Popen:
    environment = {**os.environ, "OMP_NUM_THREADS": THREADS, "MKL_NUM_THREADS": THREADS}
    server = subprocess.Popen(
        [sys.executable, "-m", "llava_kit.cli", "serve", str(export), "--port", str(port),
         "--model-name", MODEL, "--max-batch", str(max_batch), "--max-queue", "256"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"llava-kit serve exited: {server.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("llava-kit serve did not start within 180 s")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "scienceqa"
        synth_scienceqa(data, n=max(400, 20 * args.requests), seed=0)
        demo_export(data, Path(tmp) / "export")
        bodies = requests_for(data, args.requests, args.max_tokens)
        port = free_port()
        server = start_server(Path(tmp) / "export", port, args.max_batch)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        try:
            timed_round(url, bodies[: min(8, len(bodies))], 4)  # warm-up, untimed
            load_before = os.getloadavg()[0]
            reference: list[str] | None = None
            mismatches = {clients: 0 for clients in [1, *args.clients]}
            walls: dict[int, list[float]] = {clients: [] for clients in mismatches}
            latencies: dict[int, list[float]] = {clients: [] for clients in mismatches}
            for _ in range(args.rounds):
                for clients in [1, *args.clients]:
                    answers, latency, wall = timed_round(url, bodies, clients)
                    reference = reference or answers
                    mismatches[clients] += sum(a != b for a, b in zip(answers, reference))
                    walls[clients].append(wall)
                    latencies[clients].extend(latency)
            load_after = os.getloadavg()[0]
        finally:
            server.terminate()
            server.wait(timeout=60)

    n = len(bodies)
    rows = []
    for clients in [1, *args.clients]:
        ratios = [seq / wall for seq, wall in zip(walls[1], walls[clients])]
        rows.append([
            "sequential (1 client)" if clients == 1 else f"{clients} concurrent clients",
            f"{statistics.median(n / w for w in walls[clients]):.1f}",
            f"{statistics.median(ratios):.2f}x",
            f"{min(ratios):.2f}x - {max(ratios):.2f}x",
            f"{1000 * percentile(latencies[clients], 50):.0f}",
            f"{1000 * percentile(latencies[clients], 99):.0f}",
            f"{mismatches[clients]} / {n * args.rounds}",
        ])
    headers = ["clients", "requests/s (median)", "throughput vs sequential (median)",
               "spread over rounds", "p50 latency ms", "p99 latency ms", "answers differing"]
    device = f"cpu ({os.cpu_count()} cores, server with {THREADS} torch thread(s))"
    title = (f"llava-kit serve under load, {n} requests x {args.rounds} rounds, tiny demo "
             f"model, {device}")
    print_table(title, headers, rows)
    note = (
        f"Greedy chat completions with one image each (synthetic ScienceQA test questions), at "
        f"most {args.max_tokens} new tokens, random weights with the demo recipe's "
        f"architecture (64 visual tokens, 3-layer Llama), server --max-batch {args.max_batch}. "
        f"Rounds alternate sequential and concurrent; the ratio is concurrent over sequential "
        f"requests/s within a round. 'answers differing' counts answers unlike the first "
        f"sequential round's for the same prompt ({len(set(reference or []))} distinct answers "
        f"among the {n} prompts, so a mix-up would show). Load average {load_before:.1f} before and "
        f"{load_after:.1f} after (2 shared cores: wall times stretch when others run). Target: "
        f">= 3x at 16 concurrent clients."
    )
    print(note)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"serve_load-{datetime.date.today().isoformat()}.md"
    out.write_text(f"# {title}\n\n{render_table(headers, rows)}\n\n{note}\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
