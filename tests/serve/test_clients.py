"""The toolkit's own OpenAI-shaped clients against `llava-kit serve`: LLaVA-Bench judging
and instruction-data generation through a real client-server loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llava_kit.cli.data_cmd import data_app
from llava_kit.evaluators.base import EvalContext
from llava_kit.evaluators.llava_bench import LlavaBenchEvaluator, LlavaBenchOptions


@pytest.fixture(scope="module")
def server(opened, running_server):
    with running_server(opened, max_tokens=32) as running:
        yield running


def write_lines(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return str(path)


def contexts(images: list[Path]) -> list[dict]:
    return [{"id": f"c{i}", "image": path.name, "captions": [f"Shapes in picture {i}."],
             "instances": [{"category": "shape", "bbox": [0.1, 0.2, 0.6, 0.9]}]}
            for i, path in enumerate(images)]


def test_llava_bench_is_judged_by_the_served_model(server, opened, images, tmp_path: Path) -> None:
    root = images[0].parent.parent
    questions = [{"question_id": i, "image": f"{path.parent.name}/image.png", "category": category,
                  "text": "What is in the picture?"}
                 for i, (path, category) in enumerate(zip(images[:3], ["conv", "detail", "complex"]))]
    context = [{**record, "image": q["image"]} for record, q in zip(contexts(images[:3]), questions)]
    options = LlavaBenchOptions(
        questions=write_lines(tmp_path / "questions.jsonl", questions),
        context=write_lines(tmp_path / "context.jsonl", context),
        answers=write_lines(tmp_path / "answers.jsonl",
                            [{"question_id": q["question_id"], "text": "Two shapes."} for q in questions]),
        image_root=str(root), judge_url=server.url, judge_model=opened.recipe.name,
        judge_temperature=0.0, judge_max_tokens=16, max_new_tokens=8, max_retries=0,
    )
    result = LlavaBenchEvaluator(options).evaluate(
        EvalContext(opened.model, opened.template, tmp_path / "run", "bench"))
    assert result.details["failed"] == []  # every review came back from the server
    reviews = [json.loads(line) for line in
               (tmp_path / "run" / "results" / "llava_bench_reviews.jsonl").read_text().splitlines()]
    assert len(reviews) == 3 and all(isinstance(r["content"], str) for r in reviews)


def test_data_generation_talks_to_the_served_model(server, opened, images, tmp_path: Path) -> None:
    context = write_lines(tmp_path / "contexts.jsonl", contexts(images[:3]))
    out = tmp_path / "generated.jsonl"
    result = CliRunner().invoke(data_app, [
        "generate", "--context", context, "--type", "conversation", "--out", str(out),
        "--url", server.url, "--model", opened.recipe.name, "--temperature", "0",
        "--max-tokens", "16", "--max-retries", "0", "--concurrency", "3",
    ])
    assert result.exit_code == 0, result.output
    # A tiny model writes no well-formed conversation: its replies land in the rejects file.
    written = out.read_text().splitlines() if out.exists() else []
    rejected = [json.loads(line) for line in out.with_name("generated.rejects.jsonl").read_text().splitlines()]
    assert len(written) + len(rejected) == 3
    assert all(isinstance(r["reply"], str) for r in rejected)
