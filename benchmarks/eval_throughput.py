"""ScienceQA evaluation throughput: batched generation against one question at a time.

All answer the same synthetic ScienceQA test questions with the same tiny model (the demo
recipe's architecture, random weights: throughput does not depend on what the weights say):

- batched: ``generate_answers`` as the ``scienceqa`` evaluator calls it (batch 16, prompts
  sorted by length so each batch pads little, left padding);
- one at a time: the reference's evaluation loop (batch 1, file order, no padding);
- score mode: one forward pass per batch of 16, the likeliest option letter.

Greedy decoding, a fixed number of new tokens at most. Each way runs in its own worker, in
interleaved rounds (``interleave.py``); the table gives median speed-ups with their spread.

    python benchmarks/eval_throughput.py [--questions 96] [--max-new-tokens 8] [--rounds 7]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402

from interleave import Spread, cpu_seconds, ratios, verdict  # noqa: E402
from worker import Job, measure  # noqa: E402

RESULTS = Path(__file__).parent / "results"
BATCH = 16
MODES = ("batch16", "batch1", "score16")


class EvalJob(Job):
    """One pass over the questions per round in one ``mode``; ``info`` holds the answers."""

    def __init__(self, data: str, mode: str, questions: int, max_new_tokens: int) -> None:
        from demo_epochs import demo_recipe
        from llava_kit.data.formats.scienceqa import ScienceQAFormat, ScienceQAOptions
        from llava_kit.evaluators.generation import PromptItem
        from llava_kit.model.build import build_model, build_template

        recipe = demo_recipe(data, "finetune")
        torch.manual_seed(0)
        self.model = build_model(recipe.model).eval()
        self.template = build_template(recipe.model.template, self.model.tokenizer)
        samples = ScienceQAFormat(ScienceQAOptions(
            root=data, split="test", prompt_format="QCM-A", limit=questions)).load()
        # The last message is the reference answer; the model writes its own.
        self.prompts = [PromptItem(s.id, s.messages[:-1], s.images) for s in samples]
        self.choices = {s.id: len(s.meta["choices"]) for s in samples}
        self.mode, self.max_new_tokens = mode, max_new_tokens
        self.answers: dict[str, str] = {}
        self.run()  # a process's first pass pays one-off costs

    def _answer(self) -> dict[str, str]:
        from llava_kit.evaluators.answer_scoring import score_answers
        from llava_kit.evaluators.generation import generate_answers

        if self.mode == "score16":
            return score_answers(self.model, self.template, self.prompts, self.choices,
                                 batch_size=BATCH)
        if self.mode == "batch16":
            return generate_answers(self.model, self.template, self.prompts, batch_size=BATCH,
                                    max_new_tokens=self.max_new_tokens, progress=False)
        answers: dict[str, str] = {}
        for item in self.prompts:  # file order, as the reference's loop
            answers |= generate_answers(self.model, self.template, [item], batch_size=1,
                                        max_new_tokens=self.max_new_tokens, progress=False)
        return answers

    def run(self) -> float:
        start = cpu_seconds()
        self.answers = self._answer()
        return cpu_seconds() - start

    def info(self) -> dict[str, Any]:
        return {"questions": len(self.prompts), "answers": self.answers}


def compare(data: str, questions: int, max_new_tokens: int, rounds: int,
            generations: int = 1) -> dict[str, Any]:
    """Speed-ups of batch 16 and score mode over one at a time, and batch invariance."""
    seconds, generation_infos = measure(
        {mode: ("eval_throughput:EvalJob", data, mode, questions, max_new_tokens) for mode in MODES},
        rounds, generations)
    infos = generation_infos[-1]
    count = infos["batch1"]["questions"]
    return {
        "questions": count, "seconds": seconds,
        "batch16": ratios(seconds["batch1"], seconds["batch16"]),
        "score16": ratios(seconds["batch1"], seconds["score16"]),
        "rates": {mode: count / sorted(s)[len(s) // 2] for mode, s in seconds.items()},
        "batch_invariant": infos["batch16"]["answers"] == infos["batch1"]["answers"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=96)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    from demo_epochs import demo_data
    from llava_kit.train.report import print_table, render_table

    with tempfile.TemporaryDirectory() as tmp:
        r = compare(str(demo_data(Path(tmp))), args.questions, args.max_new_tokens, args.rounds)
    batch: Spread = r["batch16"]
    score: Spread = r["score16"]
    rows = [
        ["one at a time (reference loop)", f"{r['rates']['batch1']:.1f}", "1.00x", ""],
        ["batched generate_answers, batch 16", f"{r['rates']['batch16']:.1f}", batch.text(),
         verdict(batch, 4.0)],
        ["score mode, batch 16", f"{r['rates']['score16']:.1f}", score.text(), ""],
    ]
    headers = ["method", "questions/s (median)", "speed-up [IQR]", ">= 4x"]
    title = (f"ScienceQA eval throughput, {r['questions']} synthetic test questions, tiny demo "
             f"model, cpu ({os.cpu_count()} cores)")
    print_table(title, headers, rows)
    note = (f"Greedy decoding, at most {args.max_new_tokens} new tokens. Batch 16 and one at a "
            f"time wrote identical answers: {r['batch_invariant']}.")
    print(note)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"eval_throughput-{datetime.date.today().isoformat()}.md"
    out.write_text(f"# {title}\n\n{render_table(headers, rows)}\n\n{note}\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
