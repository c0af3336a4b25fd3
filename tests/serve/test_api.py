"""`llava-kit serve` through the official openai client: text, images, streaming, stop
strings, sampling and usage, with answers equal to the evaluators' generation."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import openai
import pytest

from llava_kit.evaluators.generation import PromptItem, generate_answers
from llava_kit.templates.base import Message

QUESTION = "What is shown?"


@pytest.fixture(scope="module")
def server(opened, running_server):
    with running_server(opened, max_tokens=64) as running:
        yield running


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)


def ask(client, opened, content, **options):
    options.setdefault("temperature", 0)
    options.setdefault("max_tokens", 12)
    return client.chat.completions.create(
        model=opened.recipe.name, messages=[{"role": "user", "content": content}], **options)


@pytest.fixture(scope="module")
def image_parts(data_url):
    def parts(paths: list[Path], text: str = QUESTION) -> list[dict]:
        return [*({"type": "image_url", "image_url": {"url": data_url(p)}} for p in paths),
                {"type": "text", "text": text}]
    return parts


def expected(opened, paths: list[Path], text: str = QUESTION, max_new_tokens: int = 12) -> str:
    markers = "\n".join(["<image>"] * len(paths))
    content = f"{markers}\n{text}" if paths else text
    item = PromptItem("q", [Message("user", content)], list(paths))
    return generate_answers(opened.model, opened.template, [item], batch_size=1,
                            max_new_tokens=max_new_tokens, progress=False)["q"]


def test_models_and_health(client, server, opened) -> None:
    assert [model.id for model in client.models.list()] == [opened.recipe.name]
    with urllib.request.urlopen(server.url.removesuffix("/v1") + "/health") as response:
        health = json.load(response)
    assert health["status"] == "ok" and health["model"] == opened.recipe.name


@pytest.mark.parametrize("count", [0, 1, 2], ids=["text", "one_image", "two_images"])
def test_greedy_answer_is_the_evaluators_answer(client, opened, images, count, image_parts) -> None:
    paths = images[:count]
    reply = ask(client, opened, image_parts(paths) if paths else QUESTION)
    assert reply.choices[0].message.content == expected(opened, paths)
    assert reply.choices[0].finish_reason in ("stop", "length")
    visual = count * opened.model.num_visual_tokens
    assert reply.usage.prompt_tokens > visual and reply.usage.completion_tokens >= 1
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_a_longer_question_about_the_image_is_answered_too(client, opened, images, image_parts) -> None:
    text = "Describe the picture in detail."
    reply = ask(client, opened, image_parts(images[3:4], text), max_tokens=20)
    assert reply.choices[0].message.content == expected(opened, images[3:4], text, 20)


def test_streamed_pieces_add_up_to_the_answer(client, opened, images, image_parts) -> None:
    whole = ask(client, opened, image_parts(images[:1]), max_tokens=20)
    chunks = list(ask(client, opened, image_parts(images[:1]), max_tokens=20, stream=True,
                      stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_max_tokens_ends_with_length(client, opened) -> None:
    reply = ask(client, opened, QUESTION, max_tokens=1, temperature=1.0, seed=3)
    assert reply.usage.completion_tokens == 1
    assert reply.choices[0].finish_reason in ("length", "stop")


def test_stop_string_cuts_the_answer(client, opened, images, image_parts) -> None:
    # A seeded sample: the same tokens every time, and more of them than a greedy answer.
    sampled = {"max_tokens": 30, "temperature": 1.0, "seed": 5}
    full = ask(client, opened, image_parts(images[:1]), **sampled).choices[0].message.content
    assert len(full) >= 6, full
    stop = full[4:6]  # inside the answer: the text must end before it
    cut = ask(client, opened, image_parts(images[:1]), stop=[stop], **sampled)
    assert cut.choices[0].message.content == full[: full.index(stop)].strip()
    assert cut.choices[0].finish_reason == "stop"
    streamed = ask(client, opened, image_parts(images[:1]), stop=stop, stream=True, **sampled)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == \
        cut.choices[0].message.content


def test_a_seed_repeats_a_sampled_answer(client, opened) -> None:
    first, second = (ask(client, opened, QUESTION, temperature=1.5, top_p=0.9, seed=11,
                         max_tokens=16).choices[0].message.content for _ in range(2))
    assert first == second


def test_system_and_earlier_turns_shape_the_prompt(client, opened, images, image_parts) -> None:
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": image_parts(images[:1])},
        {"role": "assistant", "content": "A shape."},
        {"role": "user", "content": "What colour?"},
    ]
    reply = client.chat.completions.create(model=opened.recipe.name, messages=messages,
                                           temperature=0, max_tokens=8)
    ours = [Message("user", f"Answer briefly.\n\n<image>\n{QUESTION}"),
            Message("assistant", "A shape."), Message("user", "What colour?")]
    item = PromptItem("q", ours, images[:1])
    assert reply.choices[0].message.content == generate_answers(
        opened.model, opened.template, [item], max_new_tokens=8, progress=False)["q"]


def test_api_key_is_required_when_configured(opened, running_server) -> None:
    with running_server(opened, api_key="s3cret") as keyed:
        anonymous = openai.OpenAI(base_url=keyed.url, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError, match="API key"):
            anonymous.models.list()
        keyed_client = openai.OpenAI(base_url=keyed.url, api_key="s3cret", max_retries=0)
        assert ask(keyed_client, opened, QUESTION, max_tokens=2).choices[0].message.content is not None
