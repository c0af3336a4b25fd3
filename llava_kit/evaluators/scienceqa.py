"""The ``scienceqa`` evaluator: answer a ScienceQA split, score it as the reference does.

The model sees the INPUT part of the prompt format (e.g. QCM of QCM-LEA) in the user turn,
with ``<image>`` in front of the question as in the reference's model_vqa_science.py; the
OUTPUT part only tells what the model was trained to write. Files written under
the run's results folder (stem ``scienceqa_<split>``, plus ``_blank`` with blank images):

- ``<stem>.json``: the reference's result file (acc, correct, count, results, outputs);
  ``results`` is what ScienceQA's tools/evaluate_acc.py reads;
- ``<stem>_table.json``: the per-category accuracies (null for an empty category);
- ``<stem>_predictions.jsonl``: one {question_id, prompt, text} per problem, the answer
  file layout of the reference, so :func:`score_file` (or the reference scorer) re-scores it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping

from pydantic import Field, field_validator, model_validator
from rich import box
from rich.console import Console
from rich.table import Table

from llava_kit.components import Options
from llava_kit.data.formats.base import DataFormat
from llava_kit.data.formats.scienceqa import ScienceQAFormat, ScienceQAOptions, read_split
from llava_kit.data.scienceqa_prompts import parse_prompt_format, problem_meta
from llava_kit.errors import DataError
from llava_kit.evaluators.answer_scoring import score_answers
from llava_kit.evaluators.base import EvalContext, EvalResult, Evaluator
from llava_kit.evaluators.generation import PromptItem, generate_answers
from llava_kit.evaluators.scienceqa_predictions import read_predictions
from llava_kit.evaluators.scienceqa_scoring import (
    CATEGORIES,
    PAPER_ROWS,
    ScoredResult,
    format_score,
    score_predictions,
)

_PAPER_ROW = "LLaVA"
_MAX_LISTED = 5


class ScienceQAEvalOptions(Options):
    """Options of the ``scienceqa`` evaluator."""

    root: str = Field(description="folder with problems.json and pid_splits.json")
    split: str = "test"
    image_root: str | None = Field(None, description="images folder; defaults to root")
    prompt_format: str = Field(
        "QCM-LEA", description="the format the model was trained on; its INPUT part is asked"
    )
    use_caption: bool = False
    batch_size: int = Field(16, ge=1)
    max_new_tokens: int = Field(
        64, ge=1, description="reasoning-first outputs (LEA) need room before 'The answer is X.'"
    )
    temperature: float = Field(0.0, ge=0.0, description="0 is greedy decoding")
    limit: int | None = Field(None, ge=1, description="score only the first N problems")
    blank_images: bool = Field(
        False, description="replace every image by a blank one (does the model use images?)"
    )
    mode: Literal["generate", "score"] = Field(
        "generate", description="score: the likeliest option letter from one forward pass "
        "(output format A only)"
    )

    @field_validator("prompt_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        try:
            parse_prompt_format(value)
        except DataError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @model_validator(mode="after")
    def _score_needs_answer_first(self) -> "ScienceQAEvalOptions":
        if self.mode == "score" and parse_prompt_format(self.prompt_format)[1] != "A":
            raise ValueError(
                f"mode 'score' reads the answer letter right after 'The answer is', which only "
                f"output format A writes first; prompt_format {self.prompt_format!r} needs "
                "mode 'generate'"
            )
        return self


class ScienceQAEvaluator(Evaluator):
    """ScienceQA multiple-choice accuracy, overall and per category, beside the LLaVA paper."""

    Options: ClassVar[type[Options]] = ScienceQAEvalOptions

    @property
    def result_stem(self) -> str:
        """The name its result files start with (one set per split and image choice)."""
        opts: ScienceQAEvalOptions = self.options  # type: ignore[assignment]
        return f"scienceqa_{opts.split}" + ("_blank" if opts.blank_images else "")

    def data_formats(self) -> list[DataFormat]:
        return [self._data()]

    def _data(self) -> ScienceQAFormat:
        """The split it answers, read with the prompt format the model was trained on."""
        opts: ScienceQAEvalOptions = self.options  # type: ignore[assignment]
        return ScienceQAFormat(
            ScienceQAOptions(
                root=opts.root,
                split=opts.split,
                image_root=opts.image_root,
                prompt_format=opts.prompt_format,
                use_caption=opts.use_caption,
                limit=opts.limit,
            )
        )

    def evaluate(self, context: EvalContext) -> EvalResult:
        opts: ScienceQAEvalOptions = self.options  # type: ignore[assignment]
        samples = self._data().load()
        if not samples:
            raise DataError(f"{opts.root}: split {opts.split!r} has no problems to evaluate")
        # The last message is the training answer; the model must write its own.
        prompts = [PromptItem(s.id, s.messages[:-1], s.images) for s in samples]
        if opts.mode == "score":
            predictions = score_answers(
                context.model, context.template, prompts,
                {s.id: len(s.meta["choices"]) for s in samples},
                batch_size=opts.batch_size, blank_images=opts.blank_images,
            )
        else:
            predictions = generate_answers(
                context.model,
                context.template,
                prompts,
                batch_size=opts.batch_size,
                max_new_tokens=opts.max_new_tokens,
                temperature=opts.temperature,
                image_override="blank" if opts.blank_images else None,
            )
        scored = score_predictions(predictions, {s.id: s.meta for s in samples})
        stem = self.result_stem
        files = write_results(
            scored,
            context.results_dir,
            stem,
            prompts={item.id: item.messages[-1].content for item in prompts},
        )
        title = f"ScienceQA {opts.split}" + (" (blank images)" if opts.blank_images else "")
        Console().print(rich_table(scored, title))
        return EvalResult(
            metrics=headline_metrics(scored),
            report_sections=[
                markdown_section(
                    scored, split=opts.split, blank_images=opts.blank_images,
                    prompt_format=opts.prompt_format,
                )
            ],
            details={
                "files": {kind: str(path) for kind, path in files.items()},
                "count": scored.count,
                "correct": scored.correct,
                "failed": scored.failed,
            },
        )


def headline_metrics(scored: ScoredResult) -> dict[str, float]:
    """``acc`` and every non-empty category (Avg is ``acc`` itself, so it is left out)."""
    metrics = {"acc": scored.acc}
    metrics.update(
        (name, value)
        for name, value in scored.table.items()
        if name != "Avg" and value is not None
    )
    return metrics


def result_paths(results_dir: Path, stem: str) -> dict[str, Path]:
    """The files ``write_results`` writes for ``stem``, by kind."""
    return {
        "result": results_dir / f"{stem}.json",
        "table": results_dir / f"{stem}_table.json",
        "predictions": results_dir / f"{stem}_predictions.jsonl",
    }


def write_results(
    scored: ScoredResult,
    results_dir: Path,
    stem: str,
    *,
    prompts: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Write the result, table and predictions files; returns their paths by kind."""
    results_dir.mkdir(parents=True, exist_ok=True)
    paths = result_paths(results_dir, stem)
    paths["result"].write_text(json.dumps(scored.to_json(), indent=2), encoding="utf-8")
    paths["table"].write_text(json.dumps(scored.table, indent=2), encoding="utf-8")
    with paths["predictions"].open("w", encoding="utf-8") as handle:
        for pid, text in scored.outputs.items():
            record: dict[str, Any] = {"question_id": pid}
            if prompts is not None and pid in prompts:
                record["prompt"] = prompts[pid]
            record["text"] = text
            handle.write(json.dumps(record) + "\n")
    return paths


def rich_table(scored: ScoredResult, title: str) -> Table:
    """This run's categories above the paper's LLaVA row, for the terminal."""
    # Compact layout: ten columns of "100.00" still fit an 80-column terminal.
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, padding=0)
    table.add_column("", no_wrap=True)
    for name in CATEGORIES:
        table.add_column(name, justify="right", no_wrap=True, min_width=6)
    table.add_row("this run", *(format_score(scored.table[name]) for name in CATEGORIES))
    paper = PAPER_ROWS[_PAPER_ROW]
    table.add_row(f"{_PAPER_ROW} paper", *(format_score(paper[name]) for name in CATEGORIES))
    return table


def markdown_section(
    scored: ScoredResult, *, split: str, blank_images: bool, prompt_format: str
) -> str:
    """The report.md section: the category table beside the paper's LLaVA row, and notes."""
    heading = f"### ScienceQA ({split}{', blank images' if blank_images else ''})"
    header = "| method | " + " | ".join(CATEGORIES) + " |"
    rule = "|---|" + "---|" * len(CATEGORIES)
    ours = "| this run | " + " | ".join(format_score(scored.table[n]) for n in CATEGORIES) + " |"
    paper = PAPER_ROWS[_PAPER_ROW]
    theirs = (
        f"| {_PAPER_ROW} (paper, test) | "
        + " | ".join(format_score(paper[n]) for n in CATEGORIES) + " |"
    )
    lines = [
        heading,
        "",
        header,
        rule,
        ours,
        theirs,
        "",
        f"Accuracy {scored.acc:.2f}% ({scored.correct}/{scored.count}), prompt format "
        f"{prompt_format}; \"-\" marks a category with no questions.",
    ]
    if blank_images:
        lines.append(
            "Every image was replaced by a blank grey image of the same size: the gap to the "
            "run with real images is what the model gets from seeing them."
        )
    if scored.failed:
        lines.append(
            f"{scored.failed} of {scored.count} outputs named no valid choice and count as "
            "wrong; if they stop before 'The answer is X.', raise max_new_tokens (the "
            "reference allows 1024 for reasoning-first formats)."
        )
    return "\n".join(lines) + "\n"


def score_file(predictions: Path, problems_root: Path, split: str) -> ScoredResult:
    """Score a prediction file on one split: answer JSONL ({question_id or pid, text} per
    line) or the reference scorer's result file (see ``scienceqa_predictions``).

    Every problem of the split is scored; one without a prediction counts as failed, as
    in the reference. Ids that are not in the split are an error (usually a wrong split).
    """
    problems = {
        pid: problem_meta(problem) for pid, problem in read_split(Path(problems_root), split)
    }
    if not problems:
        raise DataError(f"{problems_root}: split {split!r} has no problems to score")
    texts = read_predictions(Path(predictions))
    unknown = [pid for pid in texts if pid not in problems]
    if unknown:
        shown = ", ".join(repr(pid) for pid in unknown[:_MAX_LISTED])
        more = f" and {len(unknown) - _MAX_LISTED} more" if len(unknown) > _MAX_LISTED else ""
        raise DataError(
            f"{predictions}: {len(unknown)} prediction id(s) are not in split {split!r} of "
            f"{problems_root}: {shown}{more}",
            hint="score against the split the predictions were made for",
        )
    return score_predictions(texts, problems)
