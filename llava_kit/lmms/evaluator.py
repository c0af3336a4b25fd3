"""The ``lmms_eval`` evaluator: lmms-eval tasks (the LLaVA-1.5 suite, or llava-kit's local
ones) on the model a run has just trained, at its end or after every epoch
(``eval_every_epoch``), with no second copy of the model.

Files go under the results folder: ``lmms_eval/<evaluation name>/results.json`` (lmms-eval's
results, and the judge when one scored) and ``samples_<task>.jsonl`` (every document's
prompt, answer and score); with a judge, ``judge_reviews.jsonl`` (its replies) and
``judge_cache.jsonl`` (so a rerun asks only what is unanswered). The metrics are
``<task>/<metric>``, as grid.md and grid.json show them per cell.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from llava_kit.components import Options
from llava_kit.evaluators.base import EvalContext, EvalResult, Evaluator
from llava_kit.lmms import INSTALL, lmms_eval_missing
from llava_kit.lmms.judge import JudgeSettings
from llava_kit.lmms.local_tasks import JUDGED_LOCAL_TASKS

RESULTS_FOLDER = "lmms_eval"
JUDGE_CACHE = "judge_cache.jsonl"


class LmmsEvalOptions(Options):
    """Options of the ``lmms_eval`` evaluator."""

    tasks: list[str] = Field(min_length=1, description="lmms-eval task (or group) names")
    include_path: list[str] = Field(
        default_factory=list, description="folders of task YAMLs besides lmms-eval's own"
    )
    local_data: str = Field(
        "demo_data/lmms", description="where llava-kit's local tasks are generated on first use"
    )
    limit: int | None = Field(None, ge=1, description="answer the first N documents of each task")
    batch_size: int = Field(16, ge=1)
    max_new_tokens: int = Field(128, ge=1, description="for tasks that set none")
    interface: Literal["simple", "chat"] = Field(
        "simple", description="lmms-eval's model interface: chat reads doc_to_messages"
    )
    # The judge of judged tasks, named as the llava_bench evaluator names its own.
    judge_url: str | None = Field(None, description="OpenAI-compatible base URL of the judge")
    judge_model: str | None = None
    judge_key_env: str | None = Field(
        None, description="NAME of the environment variable holding the judge's API key"
    )
    judge_temperature: float = Field(0.2, ge=0.0)
    judge_max_tokens: int = Field(1024, ge=1)
    concurrency: int = Field(4, ge=1, description="judge requests in flight at a time")
    max_retries: int = Field(5, ge=0)
    timeout_s: float = Field(120.0, gt=0)

    @model_validator(mode="after")
    def _installed(self) -> "LmmsEvalOptions":
        # Refused when the recipe is read, not after hours of training.
        if lmms_eval_missing():
            raise ValueError(
                f"needs lmms-eval, which is not installed; install it with: {INSTALL}"
            )
        return self

    @model_validator(mode="after")
    def _judge_given(self) -> "LmmsEvalOptions":
        if (self.judge_url is None) != (self.judge_model is None):
            raise ValueError("judge_url and judge_model go together: give both, or neither")
        judged = [task for task in self.tasks if task in JUDGED_LOCAL_TASKS]
        if judged and self.judge_url is None:
            raise ValueError(
                f"{', '.join(judged)} is scored by a judge model: give judge_url and "
                "judge_model (and judge_key_env when the server needs a key)"
            )
        return self

    def judge(self) -> JudgeSettings | None:
        if self.judge_url is None or self.judge_model is None:
            return None
        return JudgeSettings(
            url=self.judge_url, model=self.judge_model, key_env=self.judge_key_env,
            temperature=self.judge_temperature, max_tokens=self.judge_max_tokens,
            concurrency=self.concurrency, max_retries=self.max_retries, timeout_s=self.timeout_s,
        )


class LmmsEvalEvaluator(Evaluator):
    """lmms-eval tasks on the model: the LLaVA-1.5 benchmark suite, beside the paper's rows."""

    Options: ClassVar[type[Options]] = LmmsEvalOptions

    def evaluate(self, context: EvalContext) -> EvalResult:
        from llava_kit.lmms.report import section
        from llava_kit.lmms.runner import TaskRun, run_tasks

        opts: LmmsEvalOptions = self.options  # type: ignore[assignment]
        folder = context.results_dir / RESULTS_FOLDER / context.name
        judge = opts.judge()
        run = TaskRun(
            tasks=opts.tasks, include_path=[Path(p) for p in opts.include_path],
            local_data=Path(opts.local_data), limit=opts.limit, batch_size=opts.batch_size,
            max_new_tokens=opts.max_new_tokens, interface=opts.interface,
            judge=replace(judge, cache=folder / JUDGE_CACHE) if judge is not None else None,
        )
        outcome = run_tasks(context.model, context.template, run,
                            image_position=context.image_position)  # type: ignore[arg-type]
        files = outcome.write(folder)
        shown = files["results"].relative_to(context.run_dir)
        return EvalResult(
            metrics=outcome.metrics,
            report_sections=[section(context.name, outcome, shown)],
            details={"files": {name: str(path) for name, path in files.items()}},
        )
