"""`llava-kit chat` end to end on a tiny trained run: --prompt mode, the interactive loop
driven through stdin, the session's history and images, and a run trained with ``hf_chat``
(a local tokenizer carrying its own chat template) prompted with that same template."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer
from typer.testing import CliRunner

from llava_kit.chat import ChatSession
from llava_kit.errors import DataError
from llava_kit.evaluators.generation import PromptItem, generate_answers
from llava_kit.loading import open_model
from llava_kit.templates.base import Message
from llava_kit.templates.plain import PlainTemplate


def invoke(args: list[str], stdin: str | None = None):
    from llava_kit.cli import app as cli

    if not any(command.name == "chat" for command in cli.app.registered_commands):
        cli._register_commands()
    return CliRunner().invoke(cli.app, args, input=stdin)


@pytest.fixture(scope="module")
def trained(chat_run: Path):
    opened = open_model(chat_run)
    return opened.model, opened.template


def test_prompt_mode_prints_the_answer_evaluation_would_give(chat_run, image_path, trained) -> None:
    model, template = trained
    result = invoke(["chat", str(chat_run), "--image", str(image_path),
                     "--prompt", "What is shown?", "--max-new-tokens", "12"])
    assert result.exit_code == 0, result.output
    # The evaluators' batched generation is an independent path to the same greedy answer.
    item = PromptItem("q", [Message("user", "<image>\nWhat is shown?")], [image_path])
    expected = generate_answers(model, template, [item], max_new_tokens=12, progress=False)["q"]
    assert expected
    assert result.stdout.strip() == expected


def test_prompt_mode_with_a_missing_image_is_a_clear_error(chat_run, tmp_path: Path) -> None:
    result = invoke(["chat", str(chat_run), "--image", str(tmp_path / "nope.png"), "--prompt", "hi"])
    assert isinstance(result.exception, DataError)
    assert "nope.png not found" in result.exception.message


def test_interactive_session_survives_a_bad_image_and_obeys_commands(chat_run, image_path, trained) -> None:
    stdin = (
        "/image /no/such/image.png\n"
        "What is shown?\n"
        f"/image {image_path}\n"
        "Describe it.\n"
        "/clear\n"
        "/frobnicate\n"
        "And now?\n"
        "/quit\n"
        "never answered\n"
    )
    result = invoke(["chat", str(chat_run), "--max-new-tokens", "6"], stdin)
    assert result.exit_code == 0, result.output
    assert "image /no/such/image.png not found" in result.output
    assert "unknown command '/frobnicate'" in result.output
    assert "(conversation cleared)" in result.output
    answers = [line.split("assistant> ", 1)[1] for line in result.stdout.splitlines()
               if "assistant> " in line]
    assert len(answers) == 3  # nothing after /quit is read

    # The same conversation through the session API gives the same answers.
    model, template = trained
    session = ChatSession(model, template, max_new_tokens=6)
    first = session.ask("What is shown?")
    session.attach_image(image_path)
    second = session.ask("Describe it.")
    session.clear()
    third = session.ask("And now?")
    assert [a.strip() for a in answers] == [first, second, third]


def test_history_and_images_carry_over_turns(trained, image_path) -> None:
    model, template = trained
    seen: list[tuple[torch.Tensor, int]] = []
    original = model.generate

    def spy(input_ids, attention_mask, pixel_values=None, **kwargs):
        seen.append((input_ids, 0 if pixel_values is None else pixel_values.shape[0]))
        return original(input_ids, attention_mask, pixel_values, **kwargs)

    streamed: list[str] = []
    session = ChatSession(model, template, max_new_tokens=6, image_position="question_first")
    session.attach_image(image_path)
    model.generate = spy
    try:
        first = session.ask("What is it?", on_text=streamed.append)
        second = session.ask("Why?")
    finally:
        del model.generate
    assert "".join(streamed).strip() == first
    assert session.messages == [
        Message("user", "What is it?\n<image>"), Message("assistant", first),
        Message("user", "Why?"), Message("assistant", second),
    ]
    # Second turn: the earlier image is still in the prompt, with the visual positions.
    assert [images for _, images in seen] == [1, 1]
    assert int((seen[1][0] == -200).sum()) == model.num_visual_tokens
    assert seen[1][0].shape[1] > seen[0][0].shape[1]


def test_a_question_the_template_rejects_leaves_the_history(trained, image_path) -> None:
    model, _ = trained
    session = ChatSession(model, PlainTemplate(), max_new_tokens=3)
    session.attach_image(image_path)
    session.ask("Caption?")
    before = list(session.messages)
    with pytest.raises(DataError, match="one user message and one answer"):
        session.ask("And another?")
    assert session.messages == before


def test_fusion_connector_chats_through_the_same_session(tmp_path, chat_data, image_path, make_run) -> None:
    """A fusion connector gets its media from LlavaModel.generate: the session needs no changes."""
    def fusion(raw: dict) -> None:
        raw["model"]["connector"] = "gated_xattn"

    opened = open_model(make_run(tmp_path, chat_data, fusion))
    model, template = opened.model, opened.template
    assert model.connector.family == "fusion"
    session = ChatSession(model, template, max_new_tokens=6)
    session.attach_image(image_path)
    streamed: list[str] = []
    answer = session.ask("What is shown?", on_text=streamed.append)
    item = PromptItem("q", [Message("user", "<image>\nWhat is shown?")], [image_path])
    assert answer == generate_answers(model, template, [item], max_new_tokens=6, progress=False)["q"]
    assert "".join(streamed).strip() == answer
    session.ask("And then?")  # the second turn still carries the image to the fusion layers
    assert len(session.messages) == 4


ZEPHYR_LIKE = (
    "{% for m in messages %}{{ '### ' + m['role'] + ':\\n' + m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '### assistant:\\n' }}{% endif %}"
)


def test_hf_chat_trains_and_chats_with_the_tokenizers_template(
    tmp_path: Path, chat_data: Path, image_path: Path, make_run
) -> None:
    folder = tmp_path / "chat_tokenizer"
    shutil.copytree(chat_data / "tokenizer", folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = ZEPHYR_LIKE
    tokenizer.save_pretrained(folder)

    def edit(raw: dict) -> None:
        raw["model"]["llm"]["tokenizer"] = str(folder)
        raw["model"]["template"] = "hf_chat"  # stage 2; stage 1 keeps plain

    run_dir = make_run(tmp_path, chat_data, edit)
    opened = open_model(run_dir)
    question = [Message("user", "<image>\nWhat is shown?")]
    assert opened.template.render_prompt(question) == tokenizer.apply_chat_template(
        [{"role": "user", "content": "<image>\nWhat is shown?"}], tokenize=False,
        add_generation_prompt=True)
    assert opened.template.stop_strings == (tokenizer.eos_token,)

    result = invoke(["chat", str(run_dir), "--image", str(image_path), "--prompt", "What is shown?",
                     "--max-new-tokens", "8"])
    assert result.exit_code == 0, result.output
    item = PromptItem("q", question, [image_path])
    expected = generate_answers(opened.model, opened.template, [item], max_new_tokens=8,
                                progress=False)["q"]
    assert result.stdout.strip() == expected
