"""The functions of llava-kit's judged LLaVA-Bench-in-the-wild task (``tasks/llava_bench.yaml``),
on rows in the schema of the hub's LLaVA-Bench-in-the-wild (question_id, question, image,
caption, gpt_answer, category conv/detail/complex), llava-kit's synthetic ones or a local
copy of the real set.

Scoring is the paper's relative score: the judge rates the reference answer and the
model's side by side, and mean(model) / mean(reference) x 100 is reported per category
and overall. Each document's ``process_results`` only gathers what the judge needs; the
reviews are asked when lmms-eval aggregates, all of a task's at once (the client's
concurrency), each question once for all the metrics that aggregate it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from llava_kit.errors import DataError
from llava_kit.evaluators.llava_bench_data import CATEGORIES
from llava_kit.evaluators.llava_bench_review import summarize
from llava_kit.lmms.judge import active_judge

# The hub's category names -> the review's (and the llava_bench evaluator's) names.
_CATEGORIES = {"conv": "conversation", **{name: name for name in CATEGORIES}}


def doc_to_visual(doc: dict[str, Any]) -> list[Image.Image]:
    return [doc["image"].convert("RGB")]


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, str] | None = None
                ) -> str:
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{doc['question']}{kwargs.get('post_prompt', '')}"


def process_results(doc: dict[str, Any], results: Sequence[str]) -> dict[str, dict[str, Any]]:
    """What the judge reviews, under the doc's category metric and the overall one."""
    category = _CATEGORIES.get(doc.get("category", ""))
    if category is None:
        raise DataError(
            f"LLaVA-Bench question {doc.get('question_id')!r}: category "
            f"{doc.get('category')!r} is not one of conv, detail, complex")
    caption = doc.get("caption", "")
    item = {
        "question_id": str(doc["question_id"]), "category": category,
        "question": doc["question"], "reference": doc["gpt_answer"],
        "context": "\n".join(caption) if isinstance(caption, list) else str(caption),
        "answer": results[0] if results else "",
    }
    # The overall metric first: lmms-eval aggregates in this order, so the judge is asked
    # about every document at once, in document order.
    return {"relative": item, f"relative_{category}": item}


def relative(items: Sequence[dict[str, Any]]) -> float | None:
    """mean(model) / mean(reference) x 100 over the judge's scores of ``items``."""
    return summarize(active_judge().scores(items)).relative
