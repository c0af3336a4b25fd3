"""The Jinja chat template written into HF exports renders what our templates render."""

from __future__ import annotations

import pytest

from llava_kit.export.chat_template import jinja_chat_template
from llava_kit.templates.base import Message
from llava_kit.templates.chatml import ChatMLDirectTemplate
from llava_kit.templates.llama2 import LlavaLlama2Template, MistralInstructTemplate
from llava_kit.templates.plain import PlainTemplate
from llava_kit.templates.vicuna import LlavaV1Template, V0Template, V1Template

QUESTION = "What colour is the square?"


def hf_messages(image_count: int) -> list[dict]:
    first = [{"type": "image"}] * image_count + [{"type": "text", "text": QUESTION}]
    return [
        {"role": "user", "content": first},
        {"role": "assistant", "content": "It is red."},
        {"role": "user", "content": "And the circle?"},
    ]


def our_messages(first: str) -> list[Message]:
    return [Message("user", first), Message("assistant", "It is red."),
            Message("user", "And the circle?")]


@pytest.mark.parametrize("template", [
    V0Template(), V1Template(), LlavaV1Template(), LlavaLlama2Template(),
    MistralInstructTemplate(), ChatMLDirectTemplate(),
], ids=lambda t: t.name)
@pytest.mark.parametrize(("position", "first"), [
    ("image_first", f"<image>\n<image>\n{QUESTION}"),
    ("question_first", f"{QUESTION}\n<image>\n<image>"),
])
def test_jinja_prompt_equals_render_prompt(tiny_tokenizer, template, position, first) -> None:
    jinja = jinja_chat_template(template, position)
    text = tiny_tokenizer.apply_chat_template(
        hf_messages(2), chat_template=jinja, tokenize=False, add_generation_prompt=True
    )
    assert text == template.render_prompt(our_messages(first))


def test_image_suffix_follows_every_marker(tiny_tokenizer) -> None:
    jinja = jinja_chat_template(V1Template(), "image_first", " ")
    text = tiny_tokenizer.apply_chat_template(hf_messages(1), chat_template=jinja, tokenize=False)
    assert f"USER: <image> \n{QUESTION} ASSISTANT: It is red.</s>USER: And the circle? ASSISTANT:" in text


def test_plain_template_has_no_chat_form() -> None:
    assert jinja_chat_template(PlainTemplate(), "image_first") is None
