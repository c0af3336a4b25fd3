"""The ``llava_bench`` evaluator: chat quality judged by a model, relative to references.

The model answers each question about its image; a judge model (any OpenAI-compatible
endpoint) reviews the reference answer and ours side by side (see
:mod:`llava_kit.evaluators.llava_bench_review`); the relative score is
mean(ours) / mean(reference) x 100 per category (conversation, detail, complex) and overall.

Files written under the run's results folder (stem ``llava_bench``):

- ``<stem>_answers.jsonl``: our answers {question_id, category, prompt, text};
- ``<stem>_reviews.jsonl``: the judge's raw reply and parsed scores per question;
- ``<stem>_scores.json``: the per-category summary;
- ``<stem>_judge_cache.jsonl``: the request cache: a rerun after an interruption only
  asks the judge what it has not answered yet. With greedy decoding (the default) a rerun
  regenerates the same answers and so hits the cache; with sampling (``temperature`` > 0)
  the answers change and every review is asked again.

Only COCO-style contexts (captions and boxes, as in the reference's COCO table) are read.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import ClassVar

from pydantic import Field
from rich.console import Console

from llava_kit.components import Options
from llava_kit.constants import IMAGE_PLACEHOLDER
from llava_kit.data.images import resolve_image
from llava_kit.endpoints.cache import RequestCache
from llava_kit.endpoints.client import ChatClient, ChatRequest, EndpointConfig
from llava_kit.errors import DataError
from llava_kit.evaluators.base import EvalContext, EvalResult, Evaluator
from llava_kit.evaluators.generation import PromptItem, generate_answers
from llava_kit.evaluators.llava_bench_data import CATEGORIES, BenchQuestion, read_bench
from llava_kit.evaluators.llava_bench_review import (
    CategoryScore,
    parse_scores,
    review_messages,
    summarize,
)
from llava_kit.templates.base import Message

# LLaVA paper, LLaVA-Bench (COCO), full training data, relative score %.
PAPER_COCO = {"conversation": 83.1, "detail": 75.3, "complex": 96.5, "all": 85.1}
STEM = "llava_bench"


class LlavaBenchOptions(Options):
    """Options of the ``llava_bench`` evaluator."""

    questions: str = Field(description="questions JSONL (question_id, image, text, category)")
    context: str = Field(description="captions and boxes per image (JSON or JSONL)")
    answers: str = Field(description="reference answers JSONL (question_id, text)")
    image_root: str = Field(description="folder the questions' image names are relative to")
    judge_url: str = Field(description="OpenAI-compatible base URL of the judge")
    judge_model: str
    judge_key_env: str | None = Field(
        None, description="NAME of the environment variable holding the judge's API key"
    )
    judge_temperature: float = Field(0.2, ge=0.0)
    judge_max_tokens: int = Field(1024, ge=1)
    concurrency: int = Field(4, ge=1)
    max_retries: int = Field(5, ge=0)
    timeout_s: float = Field(120.0, gt=0)
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int = Field(512, ge=1)
    temperature: float = Field(0.0, ge=0.0, description="0 is greedy decoding")
    limit: int | None = Field(None, ge=1, description="only the first N questions")


class LlavaBenchEvaluator(Evaluator):
    """LLaVA-Bench relative scores from a judge model, beside the paper's COCO numbers."""

    Options: ClassVar[type[Options]] = LlavaBenchOptions

    def evaluate(self, context: EvalContext) -> EvalResult:
        opts: LlavaBenchOptions = self.options  # type: ignore[assignment]
        # Built first: a missing key variable should stop the run before generation.
        client = self._client(context.results_dir)
        bench = read_bench(Path(opts.questions), Path(opts.context), Path(opts.answers), opts.limit)
        if not bench:
            raise DataError(f"{opts.questions}: no questions to evaluate")
        prompts = [self._prompt(q) for q in bench]
        answers = generate_answers(
            context.model,
            context.template,
            prompts,
            batch_size=opts.batch_size,
            max_new_tokens=opts.max_new_tokens,
            temperature=opts.temperature,
        )
        results_dir = context.results_dir
        results_dir.mkdir(parents=True, exist_ok=True)
        _write_jsonl(
            results_dir / f"{STEM}_answers.jsonl",
            [
                {
                    "question_id": q.id,
                    "category": q.category,
                    "prompt": q.text,
                    "text": answers[q.id],
                }
                for q in bench
            ],
        )
        params = {"temperature": opts.judge_temperature, "max_tokens": opts.judge_max_tokens}
        requests = [
            ChatRequest(
                id=q.id,
                messages=review_messages(
                    q.context.render(), q.text, q.category, q.reference, answers[q.id]
                ),
                params=params,
            )
            for q in bench
        ]
        replies = client.complete_many(requests)
        reviews = []
        scores: dict[str, list[tuple[float, float]]] = {c: [] for c in CATEGORIES}
        failed: list[str] = []
        for q in bench:
            reply = replies[q.id]
            record = {"question_id": q.id, "category": q.category, "content": reply.text}
            if reply.text is None:
                failed.append(q.id)
                record["error"] = reply.error
            else:
                pair = parse_scores(reply.text)
                record["scores"] = list(pair)
                scores[q.category].append(pair)
            reviews.append(record)
        _write_jsonl(results_dir / f"{STEM}_reviews.jsonl", reviews)
        summary = {c: summarize(scores[c]) for c in CATEGORIES}
        summary["all"] = summarize(pair for c in CATEGORIES for pair in scores[c])
        (results_dir / f"{STEM}_scores.json").write_text(
            json.dumps({name: asdict(score) for name, score in summary.items()}, indent=2),
            encoding="utf-8",
        )
        section = markdown_section(summary, failed)
        Console().print(section)
        metrics = {
            (f"relative_{name}" if name != "all" else "relative"): score.relative
            for name, score in summary.items()
            if score.relative is not None
        }
        return EvalResult(
            metrics=metrics,
            report_sections=[section],
            details={"failed": failed, "unparsed": summary["all"].unparsed},
        )

    def _client(self, results_dir: Path) -> ChatClient:
        opts: LlavaBenchOptions = self.options  # type: ignore[assignment]
        config = EndpointConfig(
            url=opts.judge_url,
            model=opts.judge_model,
            key_env=opts.judge_key_env,
            concurrency=opts.concurrency,
            max_retries=opts.max_retries,
            timeout_s=opts.timeout_s,
        )
        return ChatClient(config, cache=RequestCache(results_dir / f"{STEM}_judge_cache.jsonl"))

    def _prompt(self, question: BenchQuestion) -> PromptItem:
        opts: LlavaBenchOptions = self.options  # type: ignore[assignment]
        image = resolve_image(
            Path(opts.image_root),
            question.image,
            sample_id=question.id,
            source=Path(opts.questions),
        )
        # The image first, then the question, as the reference's model_vqa.py asks.
        message = Message(role="user", content=f"{IMAGE_PLACEHOLDER}\n{question.text}")
        return PromptItem(question.id, [message], [image])


def markdown_section(summary: dict[str, CategoryScore], failed: list[str]) -> str:
    """The report.md section: relative scores beside the paper's COCO numbers."""
    names = [*CATEGORIES, "all"]
    lines = [
        "### LLaVA-Bench (judged)",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        "| relative score (%) | " + " | ".join(_fmt(summary[n].relative) for n in names) + " |",
        "| reference mean | " + " | ".join(f"{summary[n].reference:.2f}" for n in names) + " |",
        "| ours mean | " + " | ".join(f"{summary[n].candidate:.2f}" for n in names) + " |",
        "| questions | " + " | ".join(str(summary[n].count) for n in names) + " |",
        "| paper (COCO, full data) | " + " | ".join(_fmt(PAPER_COCO[n]) for n in names) + " |",
        "",
    ]
    if summary["all"].unparsed:
        lines.append(
            f"{summary['all'].unparsed} judge reply(ies) had no 'score1 score2' first line; "
            "they count as -1 for both answers, as in the reference's summary."
        )
    if failed:
        lines.append(
            f"{len(failed)} question(s) got no judge reply and are left out: "
            f"{', '.join(failed[:10])}; rerun to retry them (answered ones are cached)."
        )
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
