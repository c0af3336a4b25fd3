"""Many requests in one batched ``generate`` call: each row's text, stop and end.

transformers calls a stopping criterion once per decoding step with every row's tokens so
far. ``BatchRows`` is that criterion: for each row still running it takes the new token,
sends the row's listener the text that is sure to be part of the answer, and says whether
the row is done: the end-of-sequence token or a template stop string (the same checks
``generate`` makes itself, so the row ends exactly where a one-at-a-time generation would),
one of the request's own stop strings, its ``max_tokens``, or a client that went away. A
row's answer is sent the moment the row ends, not when the whole batch does.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from transformers import PreTrainedTokenizerBase, StoppingCriteria

from llava_kit.chat.stream import open_stop_suffix
from llava_kit.evaluators.generation import cut_at_stop
from llava_kit.serve.errors import ApiError, shutting_down
from llava_kit.serve.jobs import Failed, Finished, Job, TextDelta

# A byte-fallback character cut in half decodes as this; wait for its other bytes.
_PARTIAL = "\ufffd"


class _Row:
    def __init__(self, job: Job, template_stops: Sequence[str]) -> None:
        self.job = job
        self.stops = (*template_stops, *job.prompt.stop)
        self.ids: list[int] = []
        self.text = ""
        self.sent = ""
        self.done = False

    def add(self, token: int, text: str, ended: bool) -> None:
        """``ended``: end of sequence or a template stop string, as generate sees it."""
        self.ids.append(token)
        self.text = text
        if ended or any(stop in text for stop in self.job.prompt.stop):
            self.finish("stop")
        elif len(self.ids) >= self.job.prompt.max_tokens:
            self.finish("length")
        else:
            visible = text.rstrip(_PARTIAL)
            visible = visible[: len(visible) - open_stop_suffix(visible, self.stops)].strip()
            self._send(visible)

    def finish(self, reason: str) -> None:
        answer = cut_at_stop(self.text, self.stops)
        self._send(answer)
        self.done = True
        prompt = self.job.prompt
        self.job.emit(Finished(answer, reason, prompt.prompt_tokens, len(self.ids)))

    def _send(self, visible: str) -> None:
        # What was sent stays sent: only text extending it goes out.
        if len(visible) > len(self.sent) and visible.startswith(self.sent):
            self.job.emit(TextDelta(visible[len(self.sent):]))
            self.sent = visible


class BatchRows(StoppingCriteria):
    def __init__(
        self,
        jobs: Sequence[Job],
        tokenizer: PreTrainedTokenizerBase,
        template_stops: Sequence[str],
        template_stop_check: StoppingCriteria | None,
        *,
        closing: Callable[[], bool],
    ) -> None:
        self.rows = [_Row(job, template_stops) for job in jobs]
        self.tokenizer = tokenizer
        self.template_stop_check = template_stop_check
        self.closing = closing  # the server stops: end every row now
        self.cancelled = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        if self.closing():
            self.fail_all(shutting_down())
            return torch.ones(len(self.rows), dtype=torch.bool, device=input_ids.device)
        tokens = input_ids[:, -1].tolist()
        stopped = [False] * len(tokens)
        if self.template_stop_check is not None:
            stopped = self.template_stop_check(input_ids, scores).tolist()
        eos = self.tokenizer.eos_token_id
        for index, row in enumerate(self.rows):
            if row.done:
                continue
            if row.job.cancelled:
                row.done = True  # nobody to answer; the row stops costing compute
                self.cancelled += 1
                continue
            ids = [*row.ids, tokens[index]]
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            row.add(tokens[index], text, tokens[index] == eos or stopped[index])
        return torch.tensor([row.done for row in self.rows], device=input_ids.device)

    def running(self) -> int:
        return sum(not row.done for row in self.rows)

    def finish_all(self) -> None:
        """generate returned: rows still open ran out of new tokens."""
        for row in self.rows:
            if not row.done:
                row.finish("length")

    def fail_all(self, error: ApiError) -> None:
        for row in self.rows:
            if not row.done:
                row.done = True
                row.job.emit(Failed(error))
