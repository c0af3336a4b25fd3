"""The judged local task (LLaVA-Bench-in-the-wild style) against a local OpenAI-compatible
judge: what the judge is sent, the relative scores its replies give, the judge recorded
with the results; and the refusals, before the model is opened, without a judge."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner, Result

from llava_kit.cli.app import _register_commands, app
from llava_kit.endpoints.local_server import LocalChatServer
from llava_kit.errors import LlavaKitError

TASK = "llava_kit_llava_bench"
SECRET = "sk-judge-secret"
CATEGORIES = {"conv": "conversation", "detail": "detail", "complex": "complex"}


def eval_lmms(run: Path, local_tasks: Path, *args: str) -> Result:
    _register_commands()
    return CliRunner().invoke(app, ["eval", "lmms", str(run), "--local-data", str(local_tasks),
                                    *args])


def between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def model_score(question: str, answer: str) -> int:
    return 1 + (len(question) + len(answer)) % 9


def judge_reply(messages: list[dict[str, str]]) -> str:
    """The reference answer 8; the model's a score that depends on the question and answer."""
    prompt = messages[-1]["content"]
    question = between(prompt, "[Question]\n", "\n\n")
    answer = between(prompt, "[Answer 2]\n", "\n[End of Answer 2]")
    return f"8 {model_score(question, answer)}\nThe first answer is the more accurate."


def test_a_judged_task_asks_the_judge_and_reports_relative_scores(
    lmms_run: Path, local_tasks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = Path(shutil.copytree(lmms_run, tmp_path / "run"))
    monkeypatch.setenv("JUDGE_KEY", SECRET)
    with LocalChatServer(judge_reply) as server:
        result = eval_lmms(run, local_tasks, "--tasks", TASK, "--limit", "6",
                           "--judge-url", server.url, "--judge-model", "judge-7b",
                           "--judge-key-env", "JUDGE_KEY")
        assert result.exit_code == 0, result.output
    folder = run / "results" / "lmms_eval" / "lmms"
    samples = [json.loads(line) for line in
               (folder / f"samples_{TASK}.jsonl").read_text().splitlines()]
    answers = {sample["doc"]["question_id"]: sample["filtered_resps"][0] for sample in samples}
    assert len(answers) == 6

    # Each question reviewed once (four metrics aggregate it), the model's answer beside the
    # reference, with the key from the variable.
    assert len(server.requests) == 6
    prompts = [r.body["messages"][-1]["content"] for r in server.requests]
    sent = sorted(between(prompt, "[Answer 2]\n", "\n[End of Answer 2]") for prompt in prompts)
    assert sent == sorted(answers.values())
    captions = {sample["doc"]["caption"] for sample in samples}
    assert {between(prompt, "[Photograph]\n", "\n\n") for prompt in prompts} == captions
    assert all(r.body["model"] == "judge-7b" for r in server.requests)
    assert all(r.headers["Authorization"] == f"Bearer {SECRET}" for r in server.requests)

    # The paper's relative score: mean(model) / mean(reference) x 100, per category and all.
    scores: dict[str, list[int]] = {}
    for sample in samples:
        category = CATEGORIES[sample["doc"]["category"]]
        scores.setdefault(category, []).append(
            model_score(sample["doc"]["question"], sample["filtered_resps"][0]))
    assert set(scores) == set(CATEGORIES.values())
    results = json.loads((folder / "results.json").read_text())
    values = results["results"][TASK]
    for category, given in scores.items():
        assert values[f"relative_{category},none"] == pytest.approx(
            100 * sum(given) / len(given) / 8)
    every = [score for given in scores.values() for score in given]
    assert values["relative,none"] == pytest.approx(100 * sum(every) / len(every) / 8)

    # The judge is recorded (never its key) in results.json, the reviews and report.md.
    assert results["judge"] == {"url": server.url, "model": "judge-7b", "key_env": "JUDGE_KEY",
                                "temperature": 0.2, "max_tokens": 1024, "reviewed": 6,
                                "failed": 0}
    reviews = [json.loads(line) for line in (folder / "judge_reviews.jsonl").read_text()
               .splitlines()]
    assert [(r["question_id"], r["answer"]) for r in reviews] == list(answers.items())
    report = (run / "report.md").read_text()
    assert f"Judge: `judge-7b` at {server.url}" in report
    assert "| model | LLaVA-W |" in report and "| LLaVA-1.5 7B | 65.4 |" in report
    written = "".join(path.read_text() for path in folder.iterdir()) + report + result.output
    assert SECRET not in written


@pytest.mark.parametrize(("args", "message"), [
    ([], "task 'llava_kit_llava_bench' is scored by a judge model, and no judge is set"),
    (["--judge-url", "http://127.0.0.1:9/v1"], "--judge-url and --judge-model go together"),
    (["--judge-url", "http://127.0.0.1:9/v1", "--judge-model", "m", "--judge-key-env",
      "LLAVA_KIT_NO_SUCH_KEY"], "the environment variable LLAVA_KIT_NO_SUCH_KEY"),
])
def test_a_judged_task_without_a_working_judge_is_refused_before_the_model_loads(
    lmms_run: Path, local_tasks: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
    message: str,
) -> None:
    def never(*_: object, **__: object) -> None:
        raise AssertionError("the model was opened")

    monkeypatch.setattr("llava_kit.loading.open_model", never)
    result = eval_lmms(lmms_run, local_tasks, "--tasks", TASK, *args)
    assert isinstance(result.exception, LlavaKitError), result.output
    assert message in str(result.exception)
    if not args:
        assert "--judge-url URL --judge-model MODEL" in result.exception.hint


def test_a_recipe_naming_a_judged_task_needs_the_judge_options() -> None:
    from llava_kit.lmms.evaluator import LmmsEvalOptions

    with pytest.raises(ValidationError, match="give judge_url and judge_model"):
        LmmsEvalOptions(tasks=[TASK])
    with pytest.raises(ValidationError, match="judge_url and judge_model go together"):
        LmmsEvalOptions(tasks=["llava_kit_pope"], judge_url="http://127.0.0.1:9/v1")
    judge = LmmsEvalOptions(tasks=[TASK], judge_url="http://h/v1", judge_model="m",
                            judge_key_env="K", concurrency=2).judge()
    assert (judge.url, judge.model, judge.key_env, judge.concurrency) == ("http://h/v1", "m",
                                                                         "K", 2)


def test_a_question_the_judge_never_answers_is_left_out_and_counted() -> None:
    from llava_kit.lmms.judge import JudgeSession, JudgeSettings

    items = [{"question_id": str(n), "category": "conversation", "question": f"Question {n}?",
              "context": "a red circle", "reference": "Red.", "answer": "LU"} for n in range(2)]
    with LocalChatServer(judge_reply) as server:
        server.fail(1, 400)  # not worth a retry: fails for good at once
        session = JudgeSession(JudgeSettings(url=server.url, model="judge-7b"))
        scores = session.scores(items)
        assert session.scores(items) == scores and len(server.requests) == 2  # asked once
    assert scores == [(8.0, model_score("Question 0?", "LU"))]  # the two score alike
    assert session.summary()["reviewed"] == 1 and session.summary()["failed"] == 1
    assert sum("HTTP 400" in record.get("error", "") for record in session.records()) == 1


def test_a_local_tasks_folder_from_before_the_judged_task_gets_it_added(
    local_tasks: Path, tmp_path: Path
) -> None:
    import datasets

    from llava_kit.lmms.local_tasks import ensure_local_tasks

    older = Path(shutil.copytree(local_tasks, tmp_path / "older"))
    shutil.rmtree(older / "llava_bench")
    ensure_local_tasks(older)
    rows = datasets.load_from_disk(str(older / "llava_bench"))["test"]
    assert rows.column_names == ["question_id", "question", "image", "caption", "gpt_answer",
                                 "category", "image_id"]
    again = datasets.load_from_disk(str(local_tasks / "llava_bench"))["test"]
    assert rows.remove_columns("image").to_list() == again.remove_columns("image").to_list()
    assert (older / f"{TASK}.yaml").is_file()
