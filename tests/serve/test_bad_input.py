"""Bad requests to `llava-kit serve`: each a 4xx whose OpenAI-shaped message names the
problem, before any large allocation, and the server goes on serving. A full queue is a
429, and a client that leaves mid-stream frees its place."""

from __future__ import annotations

import base64
import json
import struct
import urllib.error
import urllib.request
import zlib

import openai
import pytest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes of valid PNG that declare a huge image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def png_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


@pytest.fixture(scope="module")
def server(opened, running_server):
    with running_server(opened, max_tokens=64, max_images=2, max_body_bytes=4 * 1024 * 1024,
                        max_image_bytes=1024 * 1024) as running:
        yield running


def post(server, body: bytes | dict) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(server.url + "/chat/completions", data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def with_image(name: str, url: str) -> dict:
    return {"model": name, "max_tokens": 4, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What?"}]}]}


def text_request(name: str, **fields) -> dict:
    return {"model": name, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, **fields}


def cases(name: str) -> list[tuple[str, object, int, str]]:
    """(case, body, status, words the message must hold)"""
    base = text_request(name)
    return [
        ("broken base64", with_image(name, "data:image/png;base64,iVBOR%%%w0KGgo="), 400, "base64 is broken"),
        ("PNG header then garbage", with_image(name, png_url(PNG_SIGNATURE + b"garbage" * 50)), 400,
         "not a readable image"),
        ("20000 x 20000 image", with_image(name, png_url(png_declaring(20000, 20000))), 413,
         "pixels this server decodes"),
        ("20 MB body", json.dumps({**base, "pad": "x" * (20 * 1024 * 1024)}).encode(), 413,
         "request body has"),
        ("image over the byte limit", with_image(name, png_url(b"\0" * 2 * 1024 * 1024)), 413,
         "bytes, more than"),
        ("unknown field", {**base, "temprature": 0.2}, 400, "unknown field 'temprature'"),
        ("unknown message field", {**base, "messages": [{"role": "user", "content": "x", "x": 1}]},
         400, "messages[0]: unknown field 'x'"),
        ("unknown part type", {**base, "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {}}]}]}, 400, "messages[0].content[0]"),
        ("not JSON", b"{\"model\": ", 400, "invalid JSON"),
        ("not an object", b"[1, 2]", 400, "JSON object"),
        ("no messages", {"model": name, "messages": []}, 400, "messages"),
        ("bad role", {**base, "messages": [{"role": "robot", "content": "x"}]}, 400, "'robot'"),
        ("answer last", {**base, "messages": [{"role": "user", "content": "x"},
                                              {"role": "assistant", "content": "y"}]},
         400, "end with a user message"),
        ("marker in text", {**base, "messages": [{"role": "user", "content": "<image> hi"}]}, 400,
         "image_url parts"),
        ("too many images", {**with_image(name, "data:image/png;base64,AAAA"), "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}] * 3}]},
         400, "3 images, more than the 2"),
        ("max_tokens over the limit", text_request(name, max_tokens=100000), 400, "more than the 64"),
        ("temperature out of range", text_request(name, temperature=7), 400, "temperature"),
        ("n above 1", text_request(name, n=2), 400, "only 1 completion"),
        ("unsupported feature", text_request(name, tools=[{"type": "function"}]), 400,
         "tools: not supported"),
        ("remote image", with_image(name, "https://example.com/cat.png"), 400, "no remote images"),
        ("local file", with_image(name, "file:///etc/passwd"), 400, "no local image files"),
        ("prompt longer than the context", text_request(name, messages=[
            {"role": "user", "content": "the cat sat " * 3000}]), 400, "context is 4096 tokens"),
        ("unknown model", text_request("gpt-9"), 404, "'gpt-9' is not served here"),
    ]


def test_every_bad_request_is_a_named_4xx_and_the_server_goes_on(server, opened) -> None:
    name = opened.recipe.name
    for case, body, status, words in cases(name):
        got, reply = post(server, body)
        assert got == status, (case, reply)
        error = reply["error"]
        assert words in error["message"], (case, error)
        assert set(error) == {"message", "type", "param", "code"}
    assert post(server, text_request(name))[0] == 200


def test_the_openai_client_sees_the_message(server, opened) -> None:
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="unknown field 'frobnicate'"):
        client.chat.completions.create(model=opened.recipe.name, messages=[
            {"role": "user", "content": "hi"}], extra_body={"frobnicate": True})
    with pytest.raises(openai.NotFoundError, match="POST /v1/completions"):
        client.completions.create(model=opened.recipe.name, prompt="hi")


def test_full_queue_is_429_and_a_client_that_leaves_frees_its_place(opened, running_server) -> None:
    with running_server(opened, max_batch=1, max_queue=1, max_tokens=1000) as small:
        client = openai.OpenAI(base_url=small.url, api_key="unused", max_retries=0)
        # A seeded sample of 1000 tokens: busy for seconds unless its client leaves.
        long = dict(model=opened.recipe.name, messages=[{"role": "user", "content": "Tell me."}],
                    max_tokens=1000, temperature=1.0, seed=2, stream=True)
        running = client.chat.completions.create(**long)
        first = [next(running), next(running)]  # the role, then text: it is generating
        assert first[1].choices[0].delta.content
        waiting = client.chat.completions.create(**long)
        next(waiting)  # its role chunk: it is queued
        with pytest.raises(openai.RateLimitError, match="busy"):
            client.chat.completions.create(**{**long, "stream": False})
        running.close()
        waiting.close()
        health = wait_for(small, lambda h: h["cancelled"] == 2 and h["running"] == 0 and h["queued"] == 0)
        assert health["completed"] == 0
        reply = client.chat.completions.create(model=opened.recipe.name, max_tokens=2,
                                               messages=[{"role": "user", "content": "Hi"}])
        assert reply.choices[0].message.content is not None


def wait_for(server, ready, timeout_s: float = 20.0) -> dict:
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        with urllib.request.urlopen(server.url.removesuffix("/v1") + "/health") as response:
            health = json.load(response)
        if ready(health) or time.monotonic() > deadline:
            return health
        time.sleep(0.05)
