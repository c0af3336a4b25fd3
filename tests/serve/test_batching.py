"""Concurrent requests are batched, and batching changes no answer: 32 clients at once
each get exactly the greedy answer one-at-a-time generation gives their prompt."""

from __future__ import annotations

import json
import queue
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
import torch
from PIL import Image

from llava_kit.evaluators.generation import PromptItem, generate_answers
from llava_kit.serve.jobs import Finished
from llava_kit.serve.request import Sampling
from llava_kit.serve.service import ModelService
from llava_kit.templates.base import Message

CLIENTS = 32
QUESTIONS = ["What is shown?", "Which shape is it?", "Describe the picture.", "Count them."]


@pytest.fixture(scope="module")
def talkative(serve_run: Path):
    """The tiny run with its connector redrawn large: the image then drives long answers
    that differ from image to image (the barely trained model says little otherwise)."""
    from llava_kit.loading import open_model

    opened = open_model(serve_run)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        for parameter in opened.model.connector.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return opened


def prompt(index: int, images: list[Path]) -> tuple[Path, str, int]:
    # Image, question and length all vary, so two clients never expect the same text.
    return images[index % len(images)], QUESTIONS[index % len(QUESTIONS)], 4 + index % 13


def test_concurrent_clients_get_the_one_at_a_time_answers(talkative, running_server, images, data_url) -> None:
    cases = [prompt(i, images) for i in range(CLIENTS)]
    expected = [
        generate_answers(talkative.model, talkative.template,
                         [PromptItem("q", [Message("user", f"<image>\n{question}")], [image])],
                         batch_size=1, max_new_tokens=length, progress=False)["q"]
        for image, question, length in cases
    ]
    assert len(set(expected)) > CLIENTS // 2  # a mix-up would show

    with running_server(talkative, max_batch=16, batch_wait_ms=20) as server:
        client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=60)

        def ask(index: int) -> str:
            image, question, length = cases[index]
            reply = client.chat.completions.create(
                model=talkative.recipe.name, temperature=0, max_tokens=length,
                messages=[{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": data_url(image)}},
                    {"type": "text", "text": question}]}])
            return reply.choices[0].message.content

        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = list(pool.map(ask, range(CLIENTS), timeout=120))
        with urllib.request.urlopen(server.url.removesuffix("/v1") + "/health") as response:
            health = json.load(response)
    assert answers == expected
    assert health["completed"] == CLIENTS
    assert health["batches"] < CLIENTS / 2  # requests really shared generate calls


def test_a_fusion_connector_is_served_through_the_same_batches(serve_data: Path) -> None:
    from llava_kit.model.build import build_model, build_template
    from llava_kit.recipes import validate_recipe
    from llava_kit.tiny.recipe import tiny_recipe

    recipe = validate_recipe(tiny_recipe(serve_data, ["model.connector=gated_xattn"]))
    torch.manual_seed(0)
    model = build_model(recipe.model).eval()
    template = build_template(recipe.model.template, model.tokenizer)
    assert model.connector.family == "fusion"
    service = ModelService(model, template, name="fusion")
    pictures = sorted(serve_data.glob("train/*/image.png"))[:6]
    conversations = [[Message("user", f"<image>\n{q}")] for q in QUESTIONS[:3]] * 2
    results: queue.SimpleQueue = queue.SimpleQueue()
    loaded = [Image.open(p).convert("RGB") for p in pictures]
    service.start()
    try:
        for index, (messages, image) in enumerate(zip(conversations, loaded)):
            prepared = service.prepare(messages, [image], Sampling(6, 0.0, 1.0, (), None))
            service.submit(prepared, lambda event, i=index: results.put((i, event)))
        finished = {}
        while len(finished) < len(loaded):
            index, event = results.get(timeout=60)
            if isinstance(event, Finished):
                finished[index] = event.text
    finally:
        service.stop()
    one_at_a_time = [
        generate_answers(model, template, [PromptItem("q", messages, [path])], batch_size=1,
                         max_new_tokens=6, progress=False)["q"]
        for messages, path in zip(conversations, pictures)
    ]
    assert [finished[i] for i in range(len(loaded))] == one_at_a_time
    assert service.scheduler.batches < len(loaded)
