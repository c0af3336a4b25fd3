"""ScienceQA evaluation throughput: batched generation against one question at a time.

Both answer the same synthetic ScienceQA test questions with the same tiny model (the demo
recipe's architecture, random weights: throughput does not depend on what the weights say):

- batched: ``generate_answers`` as the ``scienceqa`` evaluator calls it (batch 16, prompts
  sorted by length so each batch pads little, left padding);
- one at a time: the reference's evaluation loop (batch 1, file order, no padding).

Greedy decoding, a fixed number of new tokens at most. The table (questions/s and the
ratio) is printed and saved to benchmarks/results/eval_throughput-<date>.md.

    python benchmarks/eval_throughput.py [--questions 32] [--max-new-tokens 16]
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from llava_kit.data.formats.scienceqa import ScienceQAFormat, ScienceQAOptions  # noqa: E402
from llava_kit.demo.synth_scienceqa import synth_scienceqa  # noqa: E402
from llava_kit.evaluators.generation import PromptItem, generate_answers  # noqa: E402
from llava_kit.model.build import build_model, build_template  # noqa: E402
from llava_kit.recipes import load_recipe  # noqa: E402
from llava_kit.train.report import print_table, render_table  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DEMO_RECIPE = Path(__file__).resolve().parents[1] / "recipes/demo/scienceqa_tiny.yaml"
BATCH = 16


def test_prompts(data: Path, count: int) -> list[PromptItem]:
    samples = ScienceQAFormat(
        ScienceQAOptions(root=str(data), split="test", prompt_format="QCM-A", limit=count)
    ).load()
    # The last message is the reference answer; the model writes its own.
    return [PromptItem(s.id, s.messages[:-1], s.images) for s in samples]


def timed(fn) -> tuple[dict[str, str], float, float]:
    """Answers, wall seconds and this process's CPU seconds (the machine may be shared)."""
    start, cpu = time.perf_counter(), time.process_time()
    answers = fn()
    return answers, time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "scienceqa"
        synth_scienceqa(data, n=max(400, 12 * args.questions), seed=0)
        recipe = load_recipe(DEMO_RECIPE, [
            f"model.llm.tokenizer={data / 'tokenizer'}", "runtime.demo_data=null",
        ])
        torch.manual_seed(0)
        model = build_model(recipe.model)
        template = build_template(recipe.model.template, model.tokenizer)
        prompts = test_prompts(data, args.questions)
        with_images = sum(1 for item in prompts if item.images)

        def batched() -> dict[str, str]:
            return generate_answers(model, template, prompts, batch_size=BATCH,
                                    max_new_tokens=args.max_new_tokens, progress=False)

        def one_at_a_time() -> dict[str, str]:
            answers: dict[str, str] = {}
            for item in prompts:  # file order, as the reference's loop
                answers.update(generate_answers(model, template, [item], batch_size=1,
                                                max_new_tokens=args.max_new_tokens,
                                                progress=False))
            return answers

        generate_answers(model, template, prompts[:BATCH], batch_size=BATCH,
                         max_new_tokens=4, progress=False)  # warm-up, untimed
        load_before = os.getloadavg()[0]
        single, single_s, single_cpu = timed(one_at_a_time)
        batch, batch_s, batch_cpu = timed(batched)
        load_after = os.getloadavg()[0]

    n = len(prompts)
    same = sum(single[key] == batch[key] for key in single)
    rows = [
        ["one at a time (reference loop)", "1", "file order", f"{single_s:.1f}",
         f"{single_cpu:.1f}", f"{n / single_s:.2f}", "1.00x", "1.00x"],
        ["batched generate_answers", str(BATCH), "by length", f"{batch_s:.1f}",
         f"{batch_cpu:.1f}", f"{n / batch_s:.2f}", f"{single_s / batch_s:.2f}x",
         f"{single_cpu / batch_cpu:.2f}x"],
    ]
    headers = ["method", "batch", "order", "wall s", "CPU s", "questions/s (wall)",
               "speed-up (wall)", "speed-up (CPU)"]
    device = f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    title = (f"ScienceQA eval throughput, {n} synthetic test questions ({with_images} with an "
             f"image), tiny demo model, {device}")
    print_table(title, headers, rows)
    note = (
        f"Greedy decoding, at most {args.max_new_tokens} new tokens, random weights with the "
        f"demo recipe's architecture (tiny CLIP 64 px: 64 visual tokens, 3-layer Llama). "
        f"Identical answers in both runs: {same}/{n} (left padding may change float rounding). "
        f"Load average {load_before:.1f} before and {load_after:.1f} after the timed runs: on a "
        f"shared machine the wall times stretch; the CPU seconds show the work itself."
    )
    print(note)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"eval_throughput-{datetime.date.today().isoformat()}.md"
    out.write_text(f"# {title}\n\n{render_table(headers, rows)}\n\n{note}\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
