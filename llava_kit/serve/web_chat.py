"""The web chat of ``llava-kit demo``: Gradio's ``ChatInterface`` on the serving code.

Image upload in a multimodal textbox, answers streamed as generated, sampling controls,
and Gradio's own clear, retry and undo. Every turn goes through the same
``ModelService`` as the HTTP API (template, image placement, limits, the batching
scheduler), so several browser tabs share batches, and a turn the model cannot take (too
long, a bad image) is one error message in the page, never a traceback.
"""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
from PIL import Image

from llava_kit.serve.errors import ApiError
from llava_kit.serve.images import decode_image_bytes, read_image_file
from llava_kit.serve.jobs import Failed, Finished, TextDelta
from llava_kit.serve.request import Sampling, with_image_markers
from llava_kit.serve.service import ModelService
from llava_kit.templates.base import Message

# System fonts: the page must render without reaching a font service.
_THEME_FONTS = dict(font=["ui-sans-serif", "system-ui", "sans-serif"],
                    font_mono=["ui-monospace", "monospace"])


def build_demo(service: ModelService) -> gr.Blocks:
    limits = service.limits

    def respond(message: dict[str, Any], history: list[dict[str, Any]], temperature: float,
                top_p: float, max_tokens: float) -> Iterator[str]:
        try:
            messages, images = conversation(history, message, service)
            prompt = service.prepare(messages, images,
                                     Sampling(int(max_tokens), temperature, top_p, (), None))
            events: queue.SimpleQueue = queue.SimpleQueue()
            job = service.submit(prompt, events.put)
        except ApiError as exc:
            raise gr.Error(exc.message) from None
        text = ""
        try:
            while True:
                event = events.get()
                if isinstance(event, TextDelta):
                    text += event.text
                    yield text
                elif isinstance(event, Finished):
                    yield event.text
                    return
                elif isinstance(event, Failed):
                    raise gr.Error(event.error.message)
        finally:
            job.cancel()  # a stopped or abandoned answer frees its row at once

    textbox = gr.MultimodalTextbox(file_types=["image"], file_count="multiple",
                                   placeholder="Ask about an image: attach it, then type",
                                   sources=["upload"])
    return gr.ChatInterface(
        respond,
        multimodal=True,
        textbox=textbox,
        chatbot=gr.Chatbot(height=420, placeholder=f"**{service.name}**, a llava-kit model"),
        additional_inputs=[
            gr.Slider(0.0, 2.0, value=0.0, step=0.05, label="temperature (0: greedy)"),
            gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="top_p"),
            gr.Slider(1, limits.max_tokens, value=min(limits.default_max_tokens, limits.max_tokens),
                      step=1, label="max new tokens"),
        ],
        additional_inputs_accordion=gr.Accordion("Sampling", open=False),
        title=f"llava-kit: {service.name}",
        description="Attach an image and ask about it; follow-up questions keep the image.",
        concurrency_limit=limits.max_batch,  # turns from several tabs can share a batch
        analytics_enabled=False,
        fill_height=False,
    )


def launch(demo: gr.Blocks, service: ModelService, host: str, port: int, *,
           block: bool = True) -> None:
    demo.queue(max_size=service.limits.max_queue)
    demo.launch(server_name=host, server_port=port, max_file_size=service.limits.max_image_bytes,
                prevent_thread_lock=not block, quiet=True,
                theme=gr.themes.Default(**_THEME_FONTS), footer_links=[])


def conversation(history: list[dict[str, Any]], message: dict[str, Any],
                 service: ModelService) -> tuple[list[Message], list[Image.Image]]:
    """The chat so far plus the new message as template messages and their images.

    Gradio keeps an uploaded file as a user message of its own: consecutive messages of
    one role are one turn.
    """
    turns: list[tuple[str, list[str], list[str]]] = []  # role, texts, image paths
    entries = [*history, {"role": "user", "content": [
        *({"path": path} for path in _paths(message.get("files", []))), message.get("text", "")]}]
    for entry in entries:
        role = entry["role"]
        if not turns or turns[-1][0] != role:
            turns.append((role, [], []))
        for part in _parts(entry["content"]):
            if isinstance(part, str):
                turns[-1][1].append(part)
            else:
                turns[-1][2].append(part["path"])
    messages: list[Message] = []
    images: list[Image.Image] = []
    for role, texts, paths in turns:
        text = "\n".join(t for t in texts if t.strip())
        if role == "assistant":
            messages.append(Message("assistant", text))
            continue
        messages.append(with_image_markers("user", text, len(paths), service.image_position))
        for path in paths:
            where = f"image {Path(path).name}"
            images.append(decode_image_bytes(read_image_file(Path(path), where, service.limits),
                                             where, service.limits))
    if len(images) > service.limits.max_images:
        raise ApiError(400, f"this chat holds {len(images)} images, more than the "
                       f"{service.limits.max_images} the model takes; clear it to start anew")
    return messages, images


def _parts(content: Any) -> list[str | dict[str, str]]:
    """A history message's content as text pieces and ``{"path": ...}`` files."""
    items = content if isinstance(content, (list, tuple)) else [content]
    parts: list[str | dict[str, str]] = []
    for item in items:
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, dict) and item.get("type") == "text":
            parts.append(item.get("text", ""))
        elif isinstance(item, dict):
            path = item.get("path") or (item.get("file") or {}).get("path")
            if path:
                parts.append({"path": path})
        elif hasattr(item, "path"):  # a component value (gr.Image and the like)
            parts.append({"path": str(item.path)})
    return parts


def _paths(files: list[Any]) -> list[str]:
    return [f if isinstance(f, str) else f.get("path", "") for f in files]
