"""The ``lmms_eval`` evaluator: lmms-eval tasks (the LLaVA-1.5 suite, or llava-kit's local
ones) on the model a run has just trained, at its end or after every epoch
(``eval_every_epoch``), with no second copy of the model.

Files go under the results folder: ``lmms_eval/<evaluation name>/results.json`` (lmms-eval's
results) and ``samples_<task>.jsonl`` (every document's prompt, answer and score). The
metrics are ``<task>/<metric>``, as grid.md and grid.json show them per cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from llava_kit.components import Options
from llava_kit.evaluators.base import EvalContext, EvalResult, Evaluator
from llava_kit.lmms import INSTALL, lmms_eval_missing

RESULTS_FOLDER = "lmms_eval"


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

    @model_validator(mode="after")
    def _installed(self) -> "LmmsEvalOptions":
        # Refused when the recipe is read, not after hours of training.
        if lmms_eval_missing():
            raise ValueError(
                f"needs lmms-eval, which is not installed; install it with: {INSTALL}"
            )
        return self


class LmmsEvalEvaluator(Evaluator):
    """lmms-eval tasks on the model: the LLaVA-1.5 benchmark suite, beside the paper's rows."""

    Options: ClassVar[type[Options]] = LmmsEvalOptions

    def evaluate(self, context: EvalContext) -> EvalResult:
        from llava_kit.lmms.report import section
        from llava_kit.lmms.runner import TaskRun, run_tasks

        opts: LmmsEvalOptions = self.options  # type: ignore[assignment]
        run = TaskRun(
            tasks=opts.tasks, include_path=[Path(p) for p in opts.include_path],
            local_data=Path(opts.local_data), limit=opts.limit, batch_size=opts.batch_size,
            max_new_tokens=opts.max_new_tokens, interface=opts.interface,
        )
        outcome = run_tasks(context.model, context.template, run,
                            image_position=context.image_position)  # type: ignore[arg-type]
        folder = context.results_dir / RESULTS_FOLDER / context.name
        files = outcome.write(folder)
        shown = files["results"].relative_to(context.run_dir)
        return EvalResult(
            metrics=outcome.metrics,
            report_sections=[section(context.name, outcome, shown)],
            details={"files": {name: str(path) for name, path in files.items()}},
        )
