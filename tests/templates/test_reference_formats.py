"""The LLaVA-1.5/1.6 conversation formats, rendered as the reference renders them, and the
stop-string check every chat template makes on its answers."""

from __future__ import annotations

import re

import pytest
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from llava_kit.errors import DataError
from llava_kit.templates.base import ChatTemplate, Message, Segment, StopInAnswer
from llava_kit.templates.chatml import ChatMLDirectTemplate
from llava_kit.templates.llama2 import LlavaLlama2Template, MistralInstructTemplate
from llava_kit.templates.plain import PlainTemplate
from llava_kit.templates.vicuna import LlavaV1Template, V0Template, V1Template

LLAVA_SYSTEM = (
    "You are a helpful language and vision assistant. You are able to understand the visual "
    "content that the user provides, and assist the user with a variety of tasks using "
    "natural language."
)
TWO_TURNS = [
    Message("user", "<image>\nWhat is it?"),
    Message("assistant", "A dog."),
    Message("user", "What color?"),
    Message("assistant", "Brown."),
]


def test_llava_llama_2() -> None:
    opening = f"[INST] <<SYS>>\n{LLAVA_SYSTEM}\n<</SYS>>\n\n<image>\nWhat is it? [/INST]"
    assert LlavaLlama2Template().render(TWO_TURNS) == [
        Segment(opening, False),
        Segment(" A dog. </s>", True),
        Segment("<s>[INST] What color? [/INST]", False),
        Segment(" Brown. </s>", True),
    ]
    assert LlavaLlama2Template().render_prompt(TWO_TURNS[:1]) == opening
    assert LlavaLlama2Template().render_prompt(TWO_TURNS[:3]) == (
        f"{opening} A dog. </s><s>[INST] What color? [/INST]"
    )


def test_mistral_instruct_has_no_system_block_and_no_turn_separator() -> None:
    segments = MistralInstructTemplate().render(TWO_TURNS)
    assert "".join(segment.text for segment in segments) == (
        "[INST] <image>\nWhat is it? [/INST] A dog. </s>[INST] What color? [/INST] Brown. </s>"
    )
    assert [segment.trained for segment in segments] == [False, True, False, True]
    assert MistralInstructTemplate().render_prompt(TWO_TURNS[:3]) == (
        "[INST] <image>\nWhat is it? [/INST] A dog. </s>[INST] What color? [/INST]"
    )


def test_chatml_direct_joins_turns_without_newlines() -> None:
    assert ChatMLDirectTemplate().render(TWO_TURNS) == [
        Segment("<|im_start|>system\nAnswer the questions.<|im_end|><|im_start|>user\n"
                "<image>\nWhat is it?<|im_end|><|im_start|>assistant\n", False),
        Segment("A dog.<|im_end|>", True),
        Segment("<|im_start|>user\nWhat color?<|im_end|><|im_start|>assistant\n", False),
        Segment("Brown.<|im_end|>", True),
    ]
    assert ChatMLDirectTemplate().render_prompt(TWO_TURNS[:1]).endswith(
        "What is it?<|im_end|><|im_start|>assistant\n"
    )


def test_stop_strings() -> None:
    assert LlavaLlama2Template.stop_strings == MistralInstructTemplate.stop_strings == ("</s>",)
    assert ChatMLDirectTemplate.stop_strings == ("<|im_end|>",)


@pytest.mark.parametrize(
    ("template", "stop"),
    [
        (V0Template(), "###"), (V1Template(), "</s>"), (LlavaV1Template(), "</s>"),
        (LlavaLlama2Template(), "</s>"), (MistralInstructTemplate(), "</s>"),
        (ChatMLDirectTemplate(), "<|im_end|>"),
    ],
)
def test_an_answer_holding_the_stop_string_is_refused(template: ChatTemplate, stop: str) -> None:
    messages = [*TWO_TURNS[:3], Message("assistant", f"Brown{stop} and white.")]
    with pytest.raises(StopInAnswer) as error:
        template.render(messages)
    assert f"answer 2 contains {stop!r} (at character 5)" in error.value.message
    assert "on_bad_sample: skip" in (error.value.hint or "")


def test_plain_captions_may_hold_newlines() -> None:
    messages = [Message("user", "<image>"), Message("assistant", "Line one.\nLine two.")]
    assert PlainTemplate().render(messages)[1] == Segment("Line one.\nLine two.\n", True)


@pytest.mark.parametrize(
    "template", [LlavaLlama2Template(), MistralInstructTemplate(), ChatMLDirectTemplate()]
)
def test_the_new_formats_accept_tokenizers_with_their_special_tokens(
    template: ChatTemplate, sp_llama_tokenizer: PreTrainedTokenizerBase,
    byte_bpe_tokenizer: PreTrainedTokenizerFast,
) -> None:
    template.check_tokenizer(sp_llama_tokenizer)
    template.check_tokenizer(byte_bpe_tokenizer)


def test_chatml_refuses_a_tokenizer_without_its_tokens(
    tiny_tokenizer: PreTrainedTokenizerFast,
) -> None:
    with pytest.raises(DataError, match=r"template 'chatml_direct' closes every answer with "
                                        r"'<\|im_end\|>', but this tokenizer encodes"):
        ChatMLDirectTemplate().check_tokenizer(tiny_tokenizer)


def test_llava_llama_2_needs_slash_s_as_eos(other_eos_tokenizer: PreTrainedTokenizerFast) -> None:
    expected = re.escape("this tokenizer's eos token is '<|endoftext|>'")
    with pytest.raises(DataError, match=expected):
        LlavaLlama2Template().check_tokenizer(other_eos_tokenizer)
