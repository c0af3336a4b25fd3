"""The scienceqa evaluator: prompts it asks, files it writes, scores, and external files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from pydantic import ValidationError

from llava_kit.errors import DataError
from llava_kit.evaluators import scienceqa
from llava_kit.evaluators.base import EvalContext
from llava_kit.evaluators.generation import PromptItem
from llava_kit.evaluators.scienceqa import ScienceQAEvaluator, score_file
from llava_kit.evaluators.scienceqa_scoring import extract_answer
from llava_kit.model.vlm import LlavaModel
from llava_kit.plugins.registry import build_registry
from llava_kit.templates.base import Message
from llava_kit.templates.vicuna import V0Template


def problem(question: str, choices: list[str], answer: int, *, hint: str = "", image: bool = False,
            subject: str = "natural", grade: str = "grade3", split: str = "test") -> dict:
    return {
        "question": question, "choices": choices, "answer": answer, "hint": hint,
        "image": "image.png" if image else None, "subject": f"{subject} science",
        "grade": grade, "lecture": "A lecture.", "solution": "A solution.", "split": split,
    }


PROBLEMS = {
    "t1": problem("Which animal is a mammal?", ["dog", "fish", "frog"], 0,
                  hint="Look at the picture.", image=True),
    "t2": problem("Which country is larger?", ["Peru", "Chile"], 1,
                  subject="social", grade="grade8"),
    "t3": problem("Which word is a noun?", ["run", "blue", "cat", "fast"], 2, image=True,
                  subject="language", grade="grade7"),
    "t4": problem("Which is a solid?", ["milk", "rock"], 1, hint="Think about shape.",
                  grade="grade11"),
    "t5": problem("Which word rhymes with cat?", ["hat", "dog"], 0,
                  subject="language", grade="grade2"),
    "r1": problem("Which is hot?", ["ice", "fire"], 1, split="train"),
}
# Canned model outputs: t1, t3, t5 right (three extraction rules), t2 wrong, t4 unreadable.
CANNED = {
    "t1": "The lecture. The solution. The answer is A.",
    "t2": "A",
    "t3": "C. Cat names a thing.",
    "t4": "It is a rock",
    "t5": "The answer is A.",
}
TABLE = {
    "NAT": 50.0, "SOC": 0.0, "LAN": 100.0, "TXT": 50.0, "IMG": 100.0, "NO": 50.0,
    "G1-6": 100.0, "G7-12": 100 * 1 / 3, "Avg": 60.0,
}


@pytest.fixture()
def sqa_root(tmp_path: Path, make_image: Callable[..., Path]) -> Path:
    root = tmp_path / "scienceqa"
    root.mkdir()
    (root / "problems.json").write_text(json.dumps(PROBLEMS))
    (root / "pid_splits.json").write_text(
        json.dumps({"test": ["t1", "t2", "t3", "t4", "t5"], "train": ["r1"], "empty": []})
    )
    make_image(root / "test" / "t1" / "image.png", 1)
    make_image(root / "test" / "t3" / "image.png", 2, (48, 32))
    return root


class FakeGeneration:
    """Stands in for generate_answers: records what it was asked, answers from CANNED."""

    def __init__(self) -> None:
        self.prompts: list[PromptItem] = []
        self.kwargs: dict[str, Any] = {}

    def __call__(self, model, template, prompts, **kwargs) -> dict[str, str]:
        self.prompts, self.kwargs = list(prompts), kwargs
        return {item.id: CANNED[item.id] for item in prompts}


@pytest.fixture()
def fake_generation(monkeypatch: pytest.MonkeyPatch) -> FakeGeneration:
    fake = FakeGeneration()
    monkeypatch.setattr(scienceqa, "generate_answers", fake)
    return fake


def evaluator(**options: Any) -> ScienceQAEvaluator:
    entry = build_registry(entry_points=False).get("evaluator", "scienceqa")
    return entry.component(entry.component.Options(**options))


def context(run_dir: Path, model: Any = None) -> EvalContext:
    return EvalContext(model=model, template=V0Template(), run_dir=run_dir, name="sqa")


def test_evaluator_asks_the_input_part_and_writes_reference_files(
    sqa_root: Path, tmp_path: Path, fake_generation: FakeGeneration
) -> None:
    run_dir = tmp_path / "run"
    result = evaluator(root=str(sqa_root), batch_size=8, max_new_tokens=300).evaluate(
        context(run_dir)
    )

    # The model sees only the user turn (QCM of QCM-LEA), image marker first, as the
    # reference's model_vqa_science.py builds it.
    asked = {item.id: item for item in fake_generation.prompts}
    assert list(asked) == ["t1", "t2", "t3", "t4", "t5"]
    assert asked["t1"].messages == [Message(
        "user",
        "<image>\nWhich animal is a mammal?\nContext: Look at the picture.\n"
        "Options: (A) dog (B) fish (C) frog",
    )]
    assert asked["t1"].images == [sqa_root / "test" / "t1" / "image.png"]
    assert asked["t2"].messages == [Message(
        "user", "Which country is larger?\nContext: N/A\nOptions: (A) Peru (B) Chile"
    )]
    assert asked["t2"].images == []
    assert fake_generation.kwargs == {
        "batch_size": 8, "max_new_tokens": 300, "temperature": 0.0, "image_override": None,
    }

    results_dir = run_dir / "results"
    expected_results = {"t1": 0, "t2": 0, "t3": 2, "t4": -1, "t5": 0}
    assert json.loads((results_dir / "scienceqa_test.json").read_text()) == {
        "acc": 60.0, "correct": 3, "count": 5, "results": expected_results, "outputs": CANNED,
    }
    assert json.loads((results_dir / "scienceqa_test_table.json").read_text()) == TABLE
    lines = (results_dir / "scienceqa_test_predictions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["question_id"], r["text"]) for r in records] == list(CANNED.items())
    assert records[0]["prompt"] == asked["t1"].messages[0].content

    assert result.metrics == {"acc": 60.0, **{k: v for k, v in TABLE.items() if k != "Avg"}}
    (section,) = result.report_sections
    assert "### ScienceQA (test)" in section
    assert (
        "| this run | 50.00 | 0.00 | 100.00 | 50.00 | 100.00 | 50.00 | 100.00 | 33.33 | 60.00 |"
    ) in section
    assert (
        "| LLaVA (paper, test) | 90.36 | 95.95 | 88.00 | 89.49 | 88.00 | 90.66 | 90.93 | 90.90 "
        "| 90.92 |"
    ) in section
    assert "1 of 5 outputs named no valid choice" in section
    assert "blank" not in section
    assert result.details["failed"] == 1

    # The predictions file is an external prediction file like any other.
    rescored = score_file(results_dir / "scienceqa_test_predictions.jsonl", sqa_root, "test")
    assert rescored.results == expected_results and rescored.table == TABLE


def test_blank_images_get_their_own_files_and_note(
    sqa_root: Path, tmp_path: Path, fake_generation: FakeGeneration
) -> None:
    run_dir = tmp_path / "run"
    result = evaluator(root=str(sqa_root), blank_images=True, limit=2).evaluate(context(run_dir))
    assert fake_generation.kwargs["image_override"] == "blank"
    assert [item.id for item in fake_generation.prompts] == ["t1", "t2"]
    assert sorted(p.name for p in (run_dir / "results").iterdir()) == [
        "scienceqa_test_blank.json",
        "scienceqa_test_blank_predictions.jsonl",
        "scienceqa_test_blank_table.json",
    ]
    (section,) = result.report_sections
    assert "### ScienceQA (test, blank images)" in section
    assert "replaced by a blank grey image" in section
    # Only natural and social questions were asked: the other categories are empty.
    assert "| this run | 100.00 | 0.00 | - |" in section
    assert "LAN" not in result.metrics and result.metrics["acc"] == 50.0


def test_evaluator_runs_a_real_tiny_model(
    sqa_root: Path, tmp_path: Path, tiny_vlm: LlavaModel
) -> None:
    run_dir = tmp_path / "run"
    evaluator(root=str(sqa_root), limit=3, batch_size=2, max_new_tokens=4).evaluate(
        context(run_dir, tiny_vlm)
    )
    saved = json.loads((run_dir / "results" / "scienceqa_test.json").read_text())
    assert saved["count"] == 3 and list(saved["outputs"]) == ["t1", "t2", "t3"]
    choices = {pid: PROBLEMS[pid]["choices"] for pid in saved["outputs"]}
    assert saved["results"] == {
        pid: extract_answer(text, choices[pid]) for pid, text in saved["outputs"].items()
    }


def test_options_are_checked() -> None:
    with pytest.raises(ValidationError, match="unknown ScienceQA prompt format 'QCM-XYZ'"):
        ScienceQAEvaluator.Options(root="x", prompt_format="QCM-XYZ")
    with pytest.raises(ValidationError, match="batch_siz"):
        ScienceQAEvaluator.Options(root="x", batch_siz=4)
    with pytest.raises(ValidationError):
        ScienceQAEvaluator.Options(root="x", batch_size=0)


def test_empty_split_is_an_error(sqa_root: Path, tmp_path: Path,
                                 fake_generation: FakeGeneration) -> None:
    with pytest.raises(DataError, match="split 'empty' has no problems"):
        evaluator(root=str(sqa_root), split="empty").evaluate(context(tmp_path))


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_score_file_reads_question_id_or_pid(sqa_root: Path, tmp_path: Path) -> None:
    predictions = write_jsonl(tmp_path / "answers.jsonl", [
        json.dumps({"question_id": "t1", "prompt": "ignored", "text": "A"}),
        "",
        json.dumps({"pid": "t2", "text": "The answer is B."}),
        json.dumps({"question_id": "t3", "text": "The answer is C. The answer is D."}),
        json.dumps({"pid": "t5", "text": "B. hat"}),
    ])
    scored = score_file(predictions, sqa_root, "test")
    assert scored.results == {"t1": 0, "t2": 1, "t3": -1, "t4": -1, "t5": 1}
    assert (scored.correct, scored.count, scored.acc) == (2, 5, 40.0)
    assert scored.missing == ["t4"]
    assert scored.outputs == {"t1": "A", "t2": "The answer is B.",
                              "t3": "The answer is C. The answer is D.", "t5": "B. hat"}
    assert scored.table["SOC"] == 100.0 and scored.table["LAN"] == 0.0


def test_score_file_reads_the_reference_scorers_result_file(sqa_root: Path, tmp_path: Path) -> None:
    # eval_science_qa.py --output-result: indented JSON; "FAILED" where it had no answer.
    result = {
        "acc": 20.0, "correct": 1, "count": 5, "results": {"t1": 0, "t2": 1, "t3": -1, "t4": -1},
        "outputs": {"t1": "A", "t2": "The answer is B.", "t3": "FAILED", "t4": "FAILED",
                    "t5": "B. hat"},
    }
    path = tmp_path / "result.json"
    path.write_text(json.dumps(result, indent=2))
    scored = score_file(path, sqa_root, "test")
    # The texts are scored again; the file's own results ("t5" missing there) are not used.
    assert scored.results == {"t1": 0, "t2": 1, "t3": -1, "t4": -1, "t5": 1}
    assert scored.outputs["t3"] == "FAILED"


def test_score_file_reads_the_reference_answer_jsonl(sqa_root: Path, tmp_path: Path) -> None:
    # model_vqa_science.py: the answer text is already stripped; the extra keys are ignored.
    lines = [json.dumps({"question_id": pid, "prompt": "Question: ...", "text": text,
                         "answer_id": f"id{pid}", "model_id": "llava-13b", "metadata": {}})
             for pid, text in [("t1", "A"), ("t2", "The answer is B.")]]
    scored = score_file(write_jsonl(tmp_path / "answers.jsonl", lines), sqa_root, "test")
    assert (scored.results["t1"], scored.results["t2"]) == (0, 1)


@pytest.mark.parametrize(
    ("outputs", "message"),
    [([], "'outputs' must be a JSON object"), ({"t1": 3}, r"outputs\['t1'\] must be a string"),
     ({"r1": "A"}, r"1 prediction id\(s\) are not in split 'test'")],
)
def test_a_bad_result_file_names_the_key(
    sqa_root: Path, tmp_path: Path, outputs: object, message: str
) -> None:
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"acc": 0, "correct": 0, "count": 0, "results": {},
                                "outputs": outputs}))
    with pytest.raises(DataError, match=message):
        score_file(path, sqa_root, "test")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"question_id": "t1", "text": "A"}', "{not json"], r"answers.jsonl:2: invalid JSON"),
        (['["t1", "A"]'], r"answers.jsonl:1: expected a JSON object"),
        (['{"text": "A"}'], r"answers.jsonl:1: no 'question_id'"),
        (['{"question_id": "t1", "text": 3}'], r"answers.jsonl:1: 'text' must be a string"),
        (['{"pid": "t1", "text": "A"}', '{"question_id": "t1", "text": "B"}'],
         r"answers.jsonl:2: id 't1' appears a second time"),
        (['{"question_id": "r1", "text": "A"}'],
         r"1 prediction id\(s\) are not in split 'test' .*'r1'"),
    ],
)
def test_score_file_rejects_bad_files(sqa_root: Path, tmp_path: Path, lines: list[str],
                                      message: str) -> None:
    predictions = write_jsonl(tmp_path / "answers.jsonl", lines)
    with pytest.raises(DataError, match=message):
        score_file(predictions, sqa_root, "test")


def test_score_file_missing_inputs(sqa_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="prediction file not found"):
        score_file(tmp_path / "nope.jsonl", sqa_root, "test")
    predictions = write_jsonl(tmp_path / "answers.jsonl", ['{"question_id": "t1", "text": "A"}'])
    with pytest.raises(DataError, match="no split 'dev'"):
        score_file(predictions, sqa_root, "dev")
