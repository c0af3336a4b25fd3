"""``llava-kit eval scienceqa``: a finished run, a predictions file, complement and judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from llava_kit.cli.eval_cmd import eval_app
from llava_kit.endpoints.local_server import LocalChatServer

SECRET = "sk-eval-secret-9000"


def problem(subject: str, grade: int, hint: str, n: int, answer: int, q: str) -> dict:
    return {
        "question": q,
        "choices": [f"option {i}" for i in range(n)],
        "answer": answer,
        "hint": hint,
        "image": None,
        "subject": f"{subject} science",
        "grade": f"grade{grade}",
        "topic": "t",
        "category": "c",
        "skill": "s",
        "lecture": "L.",
        "solution": "S.",
        "split": "test",
    }


@pytest.fixture()
def sqa(tmp_path: Path) -> Path:
    root = tmp_path / "sqa"
    root.mkdir()
    problems = {
        "1": problem("natural", 3, "", 2, 0, "Q1"),
        "2": problem("social", 8, "a hint", 3, 2, "Q2"),
        "3": problem("language", 5, "", 2, 1, "Q3"),
        "4": problem("natural", 10, "", 3, 1, "Q4"),
    }
    (root / "problems.json").write_text(json.dumps(problems))
    (root / "pid_splits.json").write_text(
        json.dumps({"test": ["1", "2", "3", "4"], "train": ["1", "2"]})
    )
    return root


@pytest.fixture()
def predictions(tmp_path: Path) -> Path:
    path = tmp_path / "preds" / "ours.jsonl"
    path.parent.mkdir()
    texts = {"1": "The answer is A.", "2": "The answer is A.", "3": "unsure", "4": "B"}
    path.write_text(
        "".join(json.dumps({"question_id": k, "text": v}) + "\n" for k, v in texts.items())
    )
    return path


@pytest.fixture()
def other(tmp_path: Path) -> Path:
    path = tmp_path / "gpt4.json"
    path.write_text(
        json.dumps(
            {
                "results": {"1": 1, "2": 2, "3": -1, "4": 1},
                "outputs": {
                    "1": "The answer is B.",
                    "2": "The answer is C.",
                    "3": "FAILED",
                    "4": "The answer is B.",
                },
            }
        )
    )
    return path


def invoke(*args: str):
    return CliRunner().invoke(eval_app, ["scienceqa", *map(str, args)])


def test_scores_a_predictions_file(sqa: Path, predictions: Path) -> None:
    result = invoke("--predictions", predictions, "--problems", sqa)
    assert result.exit_code == 0, result.output
    scored = json.loads((predictions.parent / "scienceqa_test.json").read_text())
    assert (scored["correct"], scored["count"]) == (2, 4)
    assert scored["results"] == {"1": 0, "2": 0, "3": -1, "4": 1}
    table = json.loads((predictions.parent / "scienceqa_test_table.json").read_text())
    assert table["NAT"] == 100.0 and table["SOC"] == 0.0 and table["Avg"] == 50.0


def test_complement(sqa: Path, predictions: Path, other: Path, tmp_path: Path) -> None:
    out = tmp_path / "combined"
    result = invoke(
        "--predictions",
        predictions,
        "--problems",
        sqa,
        "--combine",
        other,
        "--mode",
        "complement",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    combined = json.loads((out / "scienceqa_test_complement.json").read_text())
    # Theirs everywhere except problem 3 (no answer): ours, which also failed.
    assert combined["results"] == {"1": 1, "2": 2, "3": -1, "4": 1}
    assert combined["correct"] == 2
    assert "paper complement" in result.output and "90.97" in result.output
    assert "3 answer(s) taken from the other model" in result.output
    table = json.loads((out / "scienceqa_test_complement_table.json").read_text())
    assert table == {
        "NAT": 50.0,
        "SOC": 100.0,
        "LAN": 0.0,
        "TXT": 100.0,
        "IMG": None,
        "NO": 100 / 3,
        "G1-6": 0.0,
        "G7-12": 100.0,
        "Avg": 50.0,
    }


def judge_reply(messages: list[dict[str, str]]) -> str:
    question = messages[-1]["content"].split("\n")[0]
    return {"Question: Q1": "Student 1 is right.\nThe answer is A.", "Question: Q2": "Looks hard."}[
        question
    ]


def test_judge(sqa: Path, predictions: Path, other: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("JUDGE_KEY", SECRET)
    out = tmp_path / "judged"
    args = [
        "--predictions",
        predictions,
        "--problems",
        sqa,
        "--combine",
        other,
        "--mode",
        "judge",
        "--judge-model",
        "gpt-judge",
        "--judge-key-env",
        "JUDGE_KEY",
        "--out",
        out,
    ]
    with LocalChatServer(judge_reply) as server:
        result = invoke(*args, "--judge-url", server.url)
        assert result.exit_code == 0, result.output
        assert len(server.requests) == 2  # problems 1 and 2 disagree; 3: no other answer; 4 agrees
        before = {path.name: path.read_bytes() for path in out.iterdir()}
        refused = invoke(*args, "--judge-url", server.url)
        assert "results already exist and would be overwritten" in str(refused.exception)
        assert "--force" in refused.exception.hint and len(server.requests) == 2
        assert {path.name: path.read_bytes() for path in out.iterdir()} == before
        again = invoke(*args, "--judge-url", server.url, "--force")
        assert again.exit_code == 0 and len(server.requests) == 2  # all from the cache
    combined = json.loads((out / "scienceqa_test_judge.json").read_text())
    # 1: the judge picks A (right); 2: no letter -> ours (A, wrong); 3: ours; 4: agreed.
    assert combined["results"] == {"1": 0, "2": 0, "3": -1, "4": 1}
    decisions = [
        json.loads(line)
        for line in (out / "scienceqa_test_judge_judge.jsonl").read_text().splitlines()
    ]
    assert [(d["pid"], d["judge_choice"], d["final"]) for d in decisions] == [
        ("1", 0, 0),
        ("2", -1, 0),
    ]
    assert "2 disagreement(s) sent to the judge; 1 reply(ies) named no option" in result.output
    assert "paper judge" in result.output and "92.53" in result.output
    written = "".join(p.read_text() for p in out.iterdir())
    assert SECRET not in written + result.output + again.output


def test_judge_failures_exit_nonzero(
    sqa: Path, predictions: Path, other: Path, tmp_path: Path
) -> None:
    with LocalChatServer(judge_reply) as server:
        server.fail(10, 500)
        result = invoke(
            "--predictions",
            predictions,
            "--problems",
            sqa,
            "--combine",
            other,
            "--mode",
            "judge",
            "--judge-url",
            server.url,
            "--judge-model",
            "j",
            "--max-retries",
            "0",
            "--out",
            tmp_path / "o",
        )
    assert result.exit_code == 1
    assert "2 judge request(s) failed" in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "exactly one of --run or --predictions"),
        (["--predictions", "p.jsonl"], "--predictions needs --problems"),
        (
            ["--predictions", "P", "--problems", "S", "--combine", "O", "--mode", "vote"],
            "not a combination mode",
        ),
        (
            ["--predictions", "P", "--problems", "S", "--combine", "O", "--mode", "judge"],
            "needs --judge-url",
        ),
        (["--run", "R", "--combine", "O"], "--combine works on a predictions file"),
    ],
)
def test_usage_errors(
    extra: list[str], message: str, sqa: Path, predictions: Path, other: Path
) -> None:
    names = {"P": predictions, "S": sqa, "O": other, "R": sqa}
    result = invoke(*(names.get(a, a) for a in extra))
    assert message in str(result.exception)


def tiny_run_recipe(sqa: Path, tiny_tokenizer_dir: Path) -> dict:
    return {
        "name": "tiny",
        "model": {
            "encoder": {
                "name": "hf_clip",
                "config": {
                    "image_size": 32,
                    "patch_size": 8,
                    "hidden_size": 32,
                    "num_hidden_layers": 2,
                    "num_attention_heads": 4,
                    "intermediate_size": 64,
                },
            },
            "connector": "linear",
            "llm": {
                "name": "hf_causal_lm",
                "tokenizer": str(tiny_tokenizer_dir),
                "config": {
                    "model_type": "llama",
                    "hidden_size": 32,
                    "num_hidden_layers": 1,
                    "num_attention_heads": 4,
                    "num_key_value_heads": 2,
                    "intermediate_size": 64,
                    "max_position_embeddings": 256,
                },
            },
            "template": "v1",
        },
        "stages": {
            "finetune": {
                "data": {
                    "format": "scienceqa",
                    "root": str(sqa),
                    "split": "train",
                    "prompt_format": "QCM-A",
                },
                "trainable": ["connector", "llm"],
                "epochs": 1,
                "batch": {"global_size": 2, "micro_size": 2},
                "optimizer": {"lr": 1.0e-3},
            }
        },
        "eval": {
            "sqa": {
                "name": "scienceqa",
                "root": str(sqa),
                "split": "train",
                "prompt_format": "QCM-A",
                "max_new_tokens": 3,
                "batch_size": 4,
            }
        },
        "runtime": {"seed": 1, "device": "cpu"},
    }


def trained_run(sqa: Path, tiny_tokenizer_dir: Path, run_dir: Path) -> Path:
    """A run directory as `llava-kit run --no-eval` leaves it: every stage finished."""
    from llava_kit.recipes import load_recipe, recipe_to_yaml
    from llava_kit.pipeline import run_recipe

    path = run_dir.parent / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_run_recipe(sqa, tiny_tokenizer_dir), sort_keys=False))
    recipe = load_recipe(path)
    run_recipe(recipe, recipe_yaml=recipe_to_yaml(recipe), run_dir=run_dir, evaluate=False)
    return run_dir


def test_evaluates_a_finished_run(sqa: Path, tmp_path: Path, tiny_tokenizer_dir: Path) -> None:
    run_dir = trained_run(sqa, tiny_tokenizer_dir, tmp_path / "run")
    result = invoke("--run", run_dir, "--split", "test")
    assert result.exit_code == 0, result.output
    results = run_dir / "results"
    assert sorted(p.name for p in results.iterdir()) == [
        "scienceqa_test.json",
        "scienceqa_test_predictions.jsonl",
        "scienceqa_test_table.json",
    ]
    scored = json.loads((results / "scienceqa_test.json").read_text())
    assert scored["count"] == 4 and set(scored["results"]) == {"1", "2", "3", "4"}
    # The written predictions re-score to the same result through the predictions path.
    rescored = invoke(
        "--predictions",
        results / "scienceqa_test_predictions.jsonl",
        "--problems",
        sqa,
        "--out",
        tmp_path / "rescored",
    )
    assert rescored.exit_code == 0, rescored.output
    again = json.loads((tmp_path / "rescored" / "scienceqa_test.json").read_text())
    assert again["results"] == scored["results"] and again["correct"] == scored["correct"]


def test_run_without_recipe_is_an_error(tmp_path: Path) -> None:
    result = invoke("--run", tmp_path)
    assert f"{tmp_path} is neither a run directory (no recipe.resolved.yaml)" in str(result.exception)


def test_a_run_whose_stage_has_not_finished_is_not_scored(
    sqa: Path, tmp_path: Path, tiny_tokenizer_dir: Path
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    recipe = tiny_run_recipe(sqa, tiny_tokenizer_dir)
    (run_dir / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    result = invoke("--run", run_dir, "--split", "test")
    assert result.exit_code != 0
    message = str(result.exception)
    assert "stage 'finetune' has not finished" in message and "checkpoints/finetune/final" in message
    assert not (run_dir / "results").exists()


def test_scoring_never_writes_over_its_input_or_earlier_results(
    sqa: Path, predictions: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scored"
    assert invoke("--predictions", predictions, "--problems", sqa, "--out", out).exit_code == 0
    written = {path.name: path.read_bytes() for path in out.iterdir()}
    # Scoring the written predictions into their own folder would rewrite the input.
    own = out / "scienceqa_test_predictions.jsonl"
    result = invoke("--predictions", own, "--problems", sqa)
    assert f"{own} is an input of this evaluation" in str(result.exception)
    result = invoke("--predictions", own, "--problems", sqa, "--force")
    assert f"{own} is an input of this evaluation" in str(result.exception)
    # Another predictions file into the same folder would replace the first one's results.
    result = invoke("--predictions", predictions, "--problems", sqa, "--out", out)
    assert "results already exist and would be overwritten" in str(result.exception)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == written
    forced = invoke("--predictions", predictions, "--problems", sqa, "--out", out, "--force")
    assert forced.exit_code == 0, forced.output


def test_re_evaluating_a_run_keeps_its_results_unless_forced(
    sqa: Path, tmp_path: Path, tiny_tokenizer_dir: Path
) -> None:
    run_dir = trained_run(sqa, tiny_tokenizer_dir, tmp_path / "run")
    assert invoke("--run", run_dir, "--split", "test").exit_code == 0
    results = run_dir / "results"
    written = {path.name: path.read_bytes() for path in results.iterdir()}
    refused = invoke("--run", run_dir, "--split", "test")
    assert "results already exist and would be overwritten" in str(refused.exception)
    assert {path.name: path.read_bytes() for path in results.iterdir()} == written
    assert invoke("--run", run_dir, "--split", "test", "--force").exit_code == 0
