"""llava-kit's model in lmms-eval, simple interface: a run directory or an export answers
lmms-eval's ``generate_until``, ``loglikelihood`` and ``generate_until_multi_round``
requests.

``LlavaKitLMM.for_model`` wraps a model already in memory (llava-kit's own commands, a
training run's live model included); lmms-eval's command line opens a run directory through
``run_models.py``.

Answers come from ``llava_kit.evaluators.generation``: length-sorted, left-padded batches
decoded greedily, the same texts at every batch size. Requests are taken a window of
batches at a time, so only that many images are decoded at once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

from lmms_eval.api.instance import GenerationResult, Instance
from lmms_eval.api.model import lmms

from llava_kit.errors import LlavaKitError
from llava_kit.evaluators.generation import PromptItem, cut_at_stop, generate_answers
from llava_kit.lmms.likelihood import continuation_logprobs
from llava_kit.lmms.requests import GenerationSettings, generation_settings, simple_prompt
from llava_kit.progress_bars import counting_bar

if TYPE_CHECKING:
    from llava_kit.model.vlm import LlavaModel
    from llava_kit.templates.base import ChatTemplate
    from llava_kit.templates.image_position import ImagePosition

# Requests whose images are decoded at once, in batches: the rest wait as dataset rows.
WINDOW_BATCHES = 8
DEFAULT_MAX_NEW_TOKENS = 128  # the reference's model_vqa default, for tasks that set none


@dataclass(frozen=True)
class AnswerJob:
    """One generation to run: its settings, a length to sort by before its images are
    decoded, and how to build its prompt."""

    settings: GenerationSettings
    sort_length: int
    prompt: Callable[[], PromptItem]


class LlavaKitLMM(lmms):
    """A llava-kit model in memory, as an lmms-eval model."""

    is_simple = True

    @classmethod
    def for_model(
        cls,
        model: "LlavaModel",
        template: "ChatTemplate",
        *,
        image_position: "ImagePosition" = "image_first",
        batch_size: int = 16,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    ) -> "LlavaKitLMM":
        """Around a model in memory (nothing is copied; it is left in its own mode)."""
        self = cls.__new__(cls)
        lmms.__init__(self)
        self._setup(model, template, image_position, batch_size, max_new_tokens)
        return self

    def _setup(
        self, model: "LlavaModel", template: "ChatTemplate", image_position: "ImagePosition",
        batch_size: int, max_new_tokens: int,
    ) -> None:
        if batch_size < 1 or max_new_tokens < 1:
            raise LlavaKitError(
                f"batch_size {batch_size} and max_new_tokens {max_new_tokens} must be at least 1"
            )
        self.llava_model = model
        self.template = template
        self.image_position = image_position
        self.batch_size_per_gpu = batch_size
        self.max_new_tokens = max_new_tokens
        # One process answers: lmms-eval must not start accelerate's process state for it.
        self.accelerator = None

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    def clean(self) -> None:
        """lmms-eval frees a model's memory once it has answered; this one belongs to whoever
        opened it (a training run keeps training it), so it stays."""

    def generate_until(self, requests: list[Instance]) -> list[str]:
        jobs = []
        for index, request in enumerate(requests):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            jobs.append(AnswerJob(
                generation_settings(gen_kwargs, self.max_new_tokens, task),
                len(context),
                self._builder(f"{task}/{doc_id}/{index}", context,
                              self._doc_visuals(doc_to_visual, doc_id, task, split), task, doc_id),
            ))
        return self._answer(jobs)

    def loglikelihood(self, requests: list[Instance]) -> list[GenerationResult]:
        """(negative log-likelihood, whether greedy decoding writes it) per request: lmms-eval
        picks a multiple-choice answer as the smallest value (its own LLaVA models return the
        loss). Each pair travels as a ``GenerationResult``, the one output lmms-eval 0.7
        passes on unchanged (anything else but text it turns into its ``str()``)."""
        scores: list[tuple[float, bool]] = []
        window = self.batch_size * WINDOW_BATCHES
        with counting_bar("requests") as bar:
            progress = bar.add_task("scoring", total=len(requests))
            for start in range(0, len(requests), window):
                pairs = []
                for index, request in enumerate(requests[start : start + window], start=start):
                    context, target, doc_to_visual, doc_id, task, split = request.args
                    doc = self.task_dict[task][split][doc_id]
                    continuation = target if isinstance(target, str) else target(doc)
                    build = self._builder(f"{task}/{doc_id}/{index}", context,
                                          self._doc_visuals(doc_to_visual, doc_id, task, split),
                                          task, doc_id)
                    pairs.append((build(), str(continuation)))
                scores += continuation_logprobs(self.llava_model, self.template, pairs,
                                                batch_size=self.batch_size)
                bar.advance(progress, len(pairs))
        return [GenerationResult(text=(-logprob, greedy))  # type: ignore[arg-type]
                for logprob, greedy in scores]

    def generate_until_multi_round(self, requests: list[Instance]) -> list[GenerationResult]:
        """Round 0 answers the request's context; each later round asks the task's
        ``doc_to_text(doc, previous_output=, round_idx=, previous_round_info=)`` for the
        next images and context, until it signals the end. Every request's answer is the
        list of its rounds (in a ``GenerationResult``, as lmms-eval 0.7 passes lists on only
        from 0.7.3); all requests are answered together, round by round."""
        rounds: list[list[str]] = [[] for _ in requests]
        info: list[Any] = [None] * len(requests)
        active = list(range(len(requests)))
        round_index = 0
        while active:
            jobs: list[AnswerJob] = []
            asked: list[int] = []
            for index in active:
                context, gen_kwargs, doc_to_visual, doc_to_text, doc_id, task, split = (
                    requests[index].args
                )
                visuals = self._doc_visuals(doc_to_visual, doc_id, task, split)
                if round_index > 0:
                    doc = self.task_dict[task][split][doc_id]
                    next_visuals, context, done, kept, info[index] = doc_to_text(
                        doc, previous_output=list(rounds[index]), round_idx=round_index,
                        previous_round_info=info[index],
                    )
                    if kept is not None:
                        rounds[index] = list(kept)
                    if done:
                        continue
                    visuals = lambda given=next_visuals: given  # noqa: E731
                jobs.append(AnswerJob(
                    generation_settings(gen_kwargs, self.max_new_tokens, task),
                    len(context),
                    self._builder(f"{task}/{doc_id}/{index}/round {round_index}", context,
                                  visuals, task, doc_id),
                ))
                asked.append(index)
            for index, answer in zip(asked, self._answer(jobs)):
                rounds[index].append(answer)
            active = asked
            round_index += 1
        return [GenerationResult(text=answers) for answers in rounds]  # type: ignore[arg-type]

    def _doc_visuals(
        self, doc_to_visual: Callable[[dict], Any], doc_id: int, task: str, split: str
    ) -> Callable[[], Any]:
        return lambda: doc_to_visual(self.task_dict[task][split][doc_id])

    def _builder(
        self, prompt_id: str, context: str, visuals: Callable[[], Any], task: str, doc_id: int
    ) -> Callable[[], PromptItem]:
        """The prompt, built when its window comes: only then are its images decoded."""
        return lambda: simple_prompt(prompt_id, context, visuals(), self.image_position,
                                     f"task {task!r} (doc {doc_id})")

    def _answer(self, jobs: list[AnswerJob]) -> list[str]:
        """Each job's answer, in order: jobs of equal settings are answered together, the
        longest first, a window of batches at a time."""
        groups: dict[GenerationSettings, list[int]] = defaultdict(list)
        for index, job in enumerate(jobs):
            groups[job.settings].append(index)
        answers: dict[int, str] = {}
        with counting_bar("prompts") as bar:
            progress = bar.add_task("answering", total=len(jobs))
            for settings, members in groups.items():
                members.sort(key=lambda index: -jobs[index].sort_length)
                for window in _windows(members, self.batch_size * WINDOW_BATCHES):
                    prompts = [jobs[index].prompt() for index in window]
                    texts = generate_answers(
                        self.llava_model, self.template, prompts, batch_size=self.batch_size,
                        max_new_tokens=settings.max_new_tokens,
                        temperature=settings.temperature, progress=False,
                    )
                    for index, prompt in zip(window, prompts):
                        answers[index] = cut_at_stop(texts[prompt.id], settings.until)
                    bar.advance(progress, len(window))
        return [answers[index] for index in range(len(jobs))]


def _windows(members: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(members), size):
        yield members[start : start + size]
