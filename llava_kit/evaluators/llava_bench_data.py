"""LLaVA-Bench input files, in the layout of the reference's ``llava/eval/table`` files.

- questions (JSONL): ``{"question_id": 0, "image": "000000441147.jpg", "text": "...",
  "category": "conv" | "detail" | "complex"}`` ("conversation" is accepted for "conv");
- context (JSON or JSONL): one record per image with ``captions`` and ``instances``
  (boxes), read by :func:`llava_kit.datagen.contexts.read_contexts`, matched by ``image``;
- answers (JSONL): the reference answers, ``{"question_id": 0, "text": "..."}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llava_kit.data.formats.problems import Problems
from llava_kit.data.formats.records import read_records
from llava_kit.datagen.contexts import ImageContext, read_contexts

CATEGORIES: tuple[str, ...] = ("conversation", "detail", "complex")
_CATEGORY_ALIASES = {
    "conv": "conversation",
    "conversation": "conversation",
    "detail": "detail",
    "complex": "complex",
}


@dataclass(frozen=True)
class BenchQuestion:
    id: str
    image: str
    text: str
    category: str
    context: ImageContext
    reference: str


def read_bench(
    questions: Path, context: Path, answers: Path, limit: int | None = None
) -> list[BenchQuestion]:
    """The questions with their image context and reference answer; problems listed together."""
    contexts = {c.image: c for c in read_contexts(context)}
    references = _read_answers(Path(answers))
    problems = Problems(Path(questions))
    bench: list[BenchQuestion] = []
    seen: set[str] = set()
    for where, record in read_records(Path(questions), limit):
        question = _question(record, where, problems, contexts, references, seen)
        if question is not None:
            bench.append(question)
    problems.raise_if_any()
    return bench


def _question(
    record: Any,
    where: str,
    problems: Problems,
    contexts: dict[str, ImageContext],
    references: dict[str, str],
    seen: set[str],
) -> BenchQuestion | None:
    if not isinstance(record, dict):
        problems.add(where, "expected a JSON object")
        return None
    qid = record.get("question_id")
    if isinstance(qid, bool) or not isinstance(qid, (str, int)):
        problems.add(where, "'question_id' must be a string or an integer")
        return None
    qid = str(qid)
    where = f"question {qid!r} ({where})"
    if qid in seen:
        problems.add(where, "the question_id appears more than once")
        return None
    seen.add(qid)
    image, text, category = record.get("image"), record.get("text"), record.get("category")
    if not isinstance(text, str) or not text.strip():
        problems.add(where, "'text' must be a non-empty string")
        return None
    if category not in _CATEGORY_ALIASES:
        problems.add(where, f"'category' must be one of conv, detail, complex; got {category!r}")
        return None
    if not isinstance(image, str) or image not in contexts:
        problems.add(where, f"image {image!r} has no record in the context file")
        return None
    if qid not in references:
        problems.add(where, "no reference answer with this question_id in the answers file")
        return None
    return BenchQuestion(
        qid, image, text, _CATEGORY_ALIASES[category], contexts[image], references[qid]
    )


def _read_answers(path: Path) -> dict[str, str]:
    problems = Problems(path)
    answers: dict[str, str] = {}
    for where, record in read_records(path, None):
        qid = record.get("question_id") if isinstance(record, dict) else None
        text = record.get("text") if isinstance(record, dict) else None
        if isinstance(qid, bool) or not isinstance(qid, (str, int)) or not isinstance(text, str):
            problems.add(where, 'expected {"question_id": ..., "text": "..."}')
            continue
        answers[str(qid)] = text
    problems.raise_if_any()
    return answers
