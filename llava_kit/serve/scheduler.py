"""Batching concurrent requests: one thread owns the model and runs one batch at a time.

The first waiting request opens a batch; for ``batch_wait_ms`` more, requests that can
share it (greedy ones together, sampled ones with the same temperature and top_p) join,
up to ``max_batch``. The batch runs as one left-padded generation through the evaluators'
``generate_new_tokens``; while it runs, new requests queue up for the next one, so the
batches grow with the load and throughput with them. A full queue refuses new requests
(429) instead of letting waits grow without bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

import torch
from transformers import StoppingCriteriaList, StopStringCriteria

from llava_kit.evaluators.generation import generate_new_tokens
from llava_kit.serve.errors import internal_error, queue_full, shutting_down
from llava_kit.serve.jobs import Failed, Job
from llava_kit.serve.limits import ServeLimits
from llava_kit.serve.rows import BatchRows
from llava_kit.templates.base import ChatTemplate

if TYPE_CHECKING:
    from llava_kit.model.vlm import LlavaModel

log = logging.getLogger("llava_kit.serve")


class BatchScheduler:
    def __init__(self, model: "LlavaModel", template: ChatTemplate, limits: ServeLimits) -> None:
        self.model = model
        self.template = template
        self.limits = limits
        stops = [s for s in template.stop_strings if s]
        # Built once: generate builds the same check per call; the rows need its verdicts.
        self._stop_check = StopStringCriteria(model.tokenizer, stops) if stops else None
        self._pending: deque[Job] = deque()
        self._condition = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._current: BatchRows | None = None
        self.completed = 0
        self.cancelled = 0
        self.batches = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="llava-kit-batches", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Refuse what waits (503) and end the running batch at its next token; no waiting,
        so a signal handler may call it."""
        with self._condition:
            self._closed = True
            for job in self._pending:
                job.emit(Failed(shutting_down()))
            self._pending.clear()
            self._condition.notify_all()

    def stop(self) -> None:
        self.close()
        if self._thread is not None:
            self._thread.join()

    def submit(self, job: Job) -> None:
        """Queue ``job``; ApiError 429 when ``max_queue`` requests are already waiting."""
        with self._condition:
            if self._closed:
                raise shutting_down()
            self._drop_cancelled()
            if len(self._pending) >= self.limits.max_queue:
                raise queue_full(self.limits.max_queue)
            self._pending.append(job)
            self._condition.notify_all()

    def stats(self) -> dict[str, int]:
        with self._condition:
            self._drop_cancelled()
            current = self._current
            return {
                "queued": len(self._pending),
                "running": current.running() if current is not None else 0,
                "completed": self.completed,
                "cancelled": self.cancelled,
                "batches": self.batches,
            }

    def _drop_cancelled(self) -> None:
        kept = [job for job in self._pending if not job.cancelled]
        self.cancelled += len(self._pending) - len(kept)
        self._pending = deque(kept)

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._generate(batch)

    def _next_batch(self) -> list[Job] | None:
        with self._condition:
            while True:
                self._drop_cancelled()
                if self._closed:
                    return None
                if self._pending:
                    break
                self._condition.wait()
            key = self._pending[0].batch_key
            deadline = time.monotonic() + self.limits.batch_wait_ms / 1000
            while not self._closed and self._count(key) < self.limits.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            self._drop_cancelled()
            batch = [job for job in self._pending if job.batch_key == key][: self.limits.max_batch]
            if not batch:  # the opener was cancelled while it waited
                return []
            taken = {id(job) for job in batch}
            self._pending = deque(job for job in self._pending if id(job) not in taken)
            self._current = BatchRows(batch, self.model.tokenizer, self.template.stop_strings,
                                      self._stop_check, closing=lambda: self._closed)
            self.batches += 1
            return batch

    def _count(self, key: tuple[object, ...]) -> int:
        return sum(1 for job in self._pending if job.batch_key == key)

    def _generate(self, batch: list[Job]) -> None:
        rows = self._current
        if not batch or rows is None:
            return
        first = batch[0].prompt
        try:
            with torch.random.fork_rng(devices=self._rng_devices(), enabled=first.seed is not None):
                if first.seed is not None:
                    torch.manual_seed(first.seed)
                generate_new_tokens(
                    self.model, self.template, [job.prompt.example for job in batch],
                    max_new_tokens=max(job.prompt.max_tokens for job in batch),
                    temperature=first.temperature, top_p=first.top_p,
                    stopping_criteria=StoppingCriteriaList([rows]),
                )
            rows.finish_all()
        except Exception:  # a bug or the device failing: every open row hears of it
            log.exception("generation failed for a batch of %d request(s)", len(batch))
            rows.fail_all(internal_error())
        with self._condition:
            self.completed += len(rows.rows) - rows.cancelled
            self.cancelled += rows.cancelled
            self._current = None

    def _rng_devices(self) -> list[int]:
        device = self.model.device
        return [device.index or 0] if device.type == "cuda" else []
