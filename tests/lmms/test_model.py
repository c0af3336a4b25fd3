"""llava-kit's lmms-eval model: its answers are llava-kit's own generation for the same
prompts, at every batch size, through either interface."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
import torch

from llava_kit.evaluators.generation import PromptItem, generate_answers
from llava_kit.lmms.runner import TaskResults, TaskRun, run_tasks
from llava_kit.loading import OpenedModel, open_model
from llava_kit.templates.base import Message

GENERATION_TASKS = ["llava_kit_pope", "llava_kit_textvqa"]
POST_PROMPT = "\nAnswer the question using a single word or phrase."


@pytest.fixture(scope="module")
def image_driven(lmms_run: Path) -> OpenedModel:
    """The trained run with its connector drawn large, so answers differ from image to image
    and equal answers across batch sizes say something."""
    opened = open_model(lmms_run)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for parameter in opened.model.connector.parameters():
            parameter.normal_(0, 0.5)
    return opened


def evaluate(opened: OpenedModel, local_tasks: Path, tasks: list[str], batch_size: int,
             interface: str = "simple") -> TaskResults:
    run = TaskRun(tasks=tasks, local_data=local_tasks, batch_size=batch_size,
                  interface=interface)  # type: ignore[arg-type]
    return run_tasks(opened.model, opened.template, run)


def answers(outcome: TaskResults, task: str) -> list[list]:
    """Per document, in document order, its requests' responses (one for a generation,
    one (loss, greedy) pair per option for a multiple choice)."""
    ordered = sorted(outcome.samples[task], key=lambda sample: sample["doc_id"])
    return [[response for response, in sample["resps"]] for sample in ordered]


@pytest.fixture(scope="module")
def at_batch_8(image_driven: OpenedModel, local_tasks: Path) -> TaskResults:
    return evaluate(image_driven, local_tasks, [*GENERATION_TASKS, "llava_kit_pope_mc"], 8)


def test_batch_1_gives_the_answers_of_batch_8(
    image_driven: OpenedModel, local_tasks: Path, at_batch_8: TaskResults
) -> None:
    at_batch_1 = evaluate(image_driven, local_tasks, [*GENERATION_TASKS, "llava_kit_pope_mc"], 1)
    for task in GENERATION_TASKS:
        texts = answers(at_batch_8, task)
        assert len({str(text) for text in texts}) > 1  # the images drive the answers
        assert answers(at_batch_1, task) == texts
    # Likelihoods: the same option wins, with the same scores.
    for one, eight in zip(answers(at_batch_1, "llava_kit_pope_mc"),
                          answers(at_batch_8, "llava_kit_pope_mc")):
        assert [greedy for _, greedy in one] == [greedy for _, greedy in eight]
        assert [nll for nll, _ in one] == pytest.approx([nll for nll, _ in eight], abs=1e-4)
    assert at_batch_1.metrics == pytest.approx(at_batch_8.metrics)


def test_lmms_eval_answers_are_llava_kits_own_generation(
    image_driven: OpenedModel, local_tasks: Path, at_batch_8: TaskResults
) -> None:
    rows = datasets.load_from_disk(str(local_tasks / "pope"))["test"]
    prompts = [
        PromptItem(str(i), [Message("user", f"<image>\n{row['question']}{POST_PROMPT}")],
                   [row["image"]])
        for i, row in enumerate(rows)
    ]
    ours = generate_answers(image_driven.model, image_driven.template, prompts, batch_size=3,
                            max_new_tokens=8, progress=False)
    assert [[text] for text in ours.values()] == answers(at_batch_8, "llava_kit_pope")


def test_the_chat_interface_asks_and_answers_the_same(
    image_driven: OpenedModel, local_tasks: Path, at_batch_8: TaskResults
) -> None:
    chat = evaluate(image_driven, local_tasks, GENERATION_TASKS, 8, interface="chat")
    for task in GENERATION_TASKS:
        assert answers(chat, task) == answers(at_batch_8, task)


def test_a_multiple_choice_task_scores_the_likelier_option(at_batch_8: TaskResults) -> None:
    samples = sorted(at_batch_8.samples["llava_kit_pope_mc"], key=lambda s: s["doc_id"])
    picked = [min(range(2), key=lambda i: sample["resps"][i][0][0]) for sample in samples]
    gold = [0 if sample["doc"]["answer"] == "yes" else 1 for sample in samples]
    accuracy = sum(p == g for p, g in zip(picked, gold)) / len(samples)
    assert at_batch_8.metrics["llava_kit_pope_mc/acc"] == pytest.approx(accuracy)


def test_multi_round_requests_are_answered_round_after_round(
    image_driven: OpenedModel, local_tasks: Path
) -> None:
    from lmms_eval.api.instance import Instance

    from llava_kit.lmms.model import LlavaKitLMM

    rows = datasets.load_from_disk(str(local_tasks / "pope"))["test"]
    lm = LlavaKitLMM.for_model(image_driven.model, image_driven.template, batch_size=2)
    lm.task_dict = {"t": {"test": rows}}

    def doc_to_text(doc, previous_output, round_idx, previous_round_info):
        if round_idx == 2:
            return None, None, True, None, None  # the task ends the conversation
        return [doc["image"]], f"Say more than: {previous_output[-1]}", False, None, None

    requests = [
        Instance("generate_until_multi_round",
                 ("Is there a shape?", {"max_new_tokens": 4}, lambda doc: [doc["image"]],
                  doc_to_text, doc_id, "t", "test"),
                 0, {"task": "t", "doc_id": doc_id, "repeats": 1})
        for doc_id in range(3)
    ]
    rounds = [result.text for result in lm.generate_until_multi_round(requests)]
    assert [len(answers) for answers in rounds] == [2, 2, 2]
    second = PromptItem("second", [Message("user", f"<image>\nSay more than: {rounds[0][0]}")],
                        [rows[0]["image"]])
    ours = generate_answers(image_driven.model, image_driven.template, [second],
                            max_new_tokens=4, progress=False)
    assert rounds[0][1] == ours["second"]
