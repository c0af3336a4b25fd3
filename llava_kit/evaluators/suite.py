"""A recipe's evaluations run on a model: each evaluator of ``recipe.eval``, in order, in
the template the model answers in."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from llava_kit.evaluators.base import EvalContext, EvalResult
from llava_kit.model.build import build_template, instantiate

if TYPE_CHECKING:
    from llava_kit.model.vlm import LlavaModel
    from llava_kit.recipes.schema import Recipe


@dataclass
class SuiteResult:
    """Each evaluation's result, by its name in ``recipe.eval``."""

    results: dict[str, EvalResult] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        return {name: dict(result.metrics) for name, result in self.results.items()}

    @property
    def report_sections(self) -> list[str]:
        return [section for result in self.results.values() for section in result.report_sections]


def evaluate_model(recipe: "Recipe", model: "LlavaModel", run_dir: Path) -> SuiteResult:
    """Run every evaluation of ``recipe`` on ``model``; files go under ``run_dir``'s results."""
    template = build_template(recipe.answer_template, model.tokenizer)
    suite = SuiteResult()
    for name, spec in recipe.eval.items():
        evaluator = instantiate(spec)
        context = EvalContext(model, template, run_dir, name, recipe.model.image_position)
        suite.results[name] = evaluator.evaluate(context)
    return suite
