"""The judge of llava-kit's judged lmms-eval tasks: its settings, and the session an
evaluation holds while lmms-eval scores.

lmms-eval calls a task's scoring functions with documents alone, so the judge they ask is
the one this module holds for the length of one evaluation (``judging``). The review is
the ``llava_bench`` evaluator's own: the same prompt, the same score parsing, the same
relative score; requests go through llava-kit's OpenAI-compatible client (key from an
environment variable, retries, concurrency, a request cache for reruns).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llava_kit.endpoints.cache import RequestCache, request_key
from llava_kit.endpoints.client import ChatClient, ChatRequest, ChatResult, EndpointConfig
from llava_kit.errors import LlavaKitError
from llava_kit.evaluators.llava_bench_review import parse_scores, review_messages


@dataclass(frozen=True)
class JudgeSettings:
    """Where the judge is and how to ask it. The key is read from the variable
    ``key_env`` names and is never recorded."""

    url: str
    model: str
    key_env: str | None = None
    temperature: float = 0.2
    max_tokens: int = 1024
    concurrency: int = 4
    max_retries: int = 5
    timeout_s: float = 120.0
    cache: Path | None = None  # the judge's replies, kept so a rerun asks only what is new

    def record(self) -> dict[str, Any]:
        """What the results say about the judge."""
        return {"url": self.url, "model": self.model, "key_env": self.key_env,
                "temperature": self.temperature, "max_tokens": self.max_tokens}


@dataclass
class Review:
    item: Mapping[str, Any]  # the document's question, reference and answer
    reply: ChatResult

    @property
    def scores(self) -> tuple[float, float] | None:
        """(reference, answer), or None when the judge never replied."""
        return parse_scores(self.reply.text) if self.reply.text is not None else None

    def record(self) -> dict[str, Any]:
        record = {name: self.item[name] for name in ("question_id", "category", "question",
                                                     "answer")}
        if self.reply.text is None:
            return {**record, "error": self.reply.error}
        return {**record, "review": self.reply.text, "scores": list(self.scores or ())}


class JudgeSession:
    """One evaluation's judge: every question is reviewed once, however many metrics
    aggregate it."""

    def __init__(self, settings: JudgeSettings) -> None:
        self.settings = settings
        config = EndpointConfig(url=settings.url, model=settings.model, key_env=settings.key_env,
                                concurrency=settings.concurrency,
                                max_retries=settings.max_retries, timeout_s=settings.timeout_s)
        cache = RequestCache(settings.cache) if settings.cache is not None else None
        # Built here: a bad URL or an unset key variable is refused before anything runs.
        self.client = ChatClient(config, cache=cache)
        self._reviews: dict[str, Review] = {}  # by request key

    def scores(self, items: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
        """The judge's scores of each item it replied to; the others are left out."""
        requests = [self._request(item) for item in items]
        new = {request.id: (item, request) for item, request in zip(items, requests)
               if request.id not in self._reviews}
        replies = self.client.complete_many([request for _, request in new.values()])
        for key, (item, _) in new.items():
            self._reviews[key] = Review(item, replies[key])
        return [scores for request in requests
                if (scores := self._reviews[request.id].scores) is not None]

    def records(self) -> list[dict[str, Any]]:
        return [review.record() for review in self._reviews.values()]

    def summary(self) -> dict[str, Any]:
        """The judge's settings and how its reviews went, for results.json."""
        failed = sum(1 for review in self._reviews.values() if review.reply.text is None)
        return {**self.settings.record(), "reviewed": len(self._reviews) - failed,
                "failed": failed}

    def _request(self, item: Mapping[str, Any]) -> ChatRequest:
        """The review of one item, named by its request key: the same question and answer
        are asked once."""
        messages = review_messages(item["context"], item["question"], item["category"],
                                   item["reference"], item["answer"])
        params = {"temperature": self.settings.temperature,
                  "max_tokens": self.settings.max_tokens}
        key = request_key(self.settings.model, messages, params)
        return ChatRequest(id=key, messages=messages, params=params)


_active: JudgeSession | None = None


@contextlib.contextmanager
def judging(session: JudgeSession | None) -> Iterator[None]:
    """``session`` is the judge the task functions ask while the block runs."""
    global _active
    _active = session
    try:
        yield
    finally:
        _active = None


def active_judge() -> JudgeSession:
    if _active is None:
        raise LlavaKitError(
            "a judged llava-kit task is being scored with no judge set",
            hint="run it through llava-kit: `llava-kit eval lmms RUN_DIR --tasks TASK "
            "--judge-url URL --judge-model MODEL`, or the lmms_eval evaluator with judge_url "
            "and judge_model",
        )
    return _active
