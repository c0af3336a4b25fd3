"""ScienceQA score mode (one forward pass) predicts what greedy generation writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from llava_kit.evaluators.answer_scoring import letter_token_ids
from llava_kit.evaluators.base import EvalContext
from llava_kit.evaluators.scienceqa import ScienceQAEvalOptions, ScienceQAEvaluator
from llava_kit.model.build import build_template
from llava_kit.recipes import validate_recipe

from .conftest import tiny_recipe


def evaluate(context: EvalContext, data: Path, mode: str) -> dict:
    options = ScienceQAEvalOptions(
        root=str(data), split="train", prompt_format="QCM-A", limit=48, batch_size=8,
        max_new_tokens=8, mode=mode,
    )
    ScienceQAEvaluator(options).evaluate(context)
    return json.loads((context.run_dir / "results" / "scienceqa_train.json").read_text())


def test_score_mode_predicts_the_generated_letters(perf_data: Path, train, tmp_path: Path) -> None:
    raw = tiny_recipe(perf_data)
    raw["stages"]["pretrain"]["enabled"] = False
    raw["stages"]["finetune"].update(epochs=30, batch={"global_size": 8, "micro_size": 8})
    recipe = validate_recipe(raw)
    model, _ = train(recipe, tmp_path / "run")
    template = build_template(recipe.model.template, model.tokenizer)
    generated = evaluate(EvalContext(model, template, tmp_path / "gen", "gen"), perf_data, "generate")
    scored = evaluate(EvalContext(model, template, tmp_path / "score", "score"), perf_data, "score")
    texts = generated["outputs"]
    # The trained model answers in the trained form, with more than one letter.
    assert all(text in {"The answer is A.", "The answer is B.", "The answer is C."}
               for text in texts.values())
    assert len(set(texts.values())) == 3
    assert scored["outputs"] == texts
    assert scored["results"] == generated["results"]


def test_letter_tokens_are_the_tokens_after_the_prefix(perf_data: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(perf_data / "tokenizer")
    ids = letter_token_ids(tokenizer, 3)
    assert tokenizer.convert_ids_to_tokens(ids) == ["\u2581A.", "\u2581B.", "\u2581C."]


def test_score_mode_needs_output_format_a() -> None:
    with pytest.raises(ValidationError, match="only output format A writes first"):
        ScienceQAEvalOptions(root="x", prompt_format="QCM-LEA", mode="score")
