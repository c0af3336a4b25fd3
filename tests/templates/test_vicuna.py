from __future__ import annotations

import pytest
from transformers import PreTrainedTokenizerFast

from llava_kit.errors import DataError
from llava_kit.templates.base import Message, Segment
from llava_kit.templates.vicuna import LlavaV1Template, V0Template, V1Template

V0_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
V1_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)

TWO_TURNS = [
    Message("user", "<image>\nWhat is it?"),
    Message("assistant", "A dog."),
    Message("user", "What color?"),
    Message("assistant", "Brown."),
]


def joined(segments: list[Segment]) -> str:
    return "".join(segment.text for segment in segments)


def test_v0_renders_the_speaker_and_signal_layout() -> None:
    segments = V0Template().render(TWO_TURNS)
    assert joined(segments) == (
        f"{V0_SYSTEM}\n\n### Human: <image>\nWhat is it?\n### Assistant: A dog.\n"
        "### Human: What color?\n### Assistant: Brown.\n###"
    )
    assert segments == [
        # The space after the role is trained: generation from the prompt writes it.
        Segment(f"{V0_SYSTEM}\n\n### Human: <image>\nWhat is it?\n### Assistant:", False),
        Segment(" A dog.\n###", True),
        Segment(" Human: What color?\n### Assistant:", False),
        Segment(" Brown.\n###", True),
    ]


def test_v1_renders_user_assistant_rounds_closed_by_eos() -> None:
    segments = V1Template().render(TWO_TURNS)
    assert joined(segments) == (
        f"{V1_SYSTEM} USER: <image>\nWhat is it? ASSISTANT: A dog.</s>"
        "USER: What color? ASSISTANT: Brown.</s>"
    )
    assert segments == [
        Segment(f"{V1_SYSTEM} USER: <image>\nWhat is it? ASSISTANT:", False),
        Segment(" A dog.</s>", True),
        Segment("USER: What color? ASSISTANT:", False),
        Segment(" Brown.</s>", True),
    ]


def test_llava_v1_differs_from_v1_only_in_the_system_message() -> None:
    segments = LlavaV1Template().render(TWO_TURNS)
    assert joined(segments) == (
        f"{V0_SYSTEM} USER: <image>\nWhat is it? ASSISTANT: A dog.</s>"
        "USER: What color? ASSISTANT: Brown.</s>"
    )
    v1 = V1Template().render(TWO_TURNS)
    assert segments[1:] == v1[1:]


@pytest.mark.parametrize(
    ("template", "first_prompt", "second_prompt"),
    [
        (
            V0Template(),
            f"{V0_SYSTEM}\n\n### Human: <image>\nWhat is it?\n### Assistant:",
            f"{V0_SYSTEM}\n\n### Human: <image>\nWhat is it?\n### Assistant: A dog.\n"
            "### Human: What color?\n### Assistant:",
        ),
        (
            V1Template(),
            f"{V1_SYSTEM} USER: <image>\nWhat is it? ASSISTANT:",
            f"{V1_SYSTEM} USER: <image>\nWhat is it? ASSISTANT: A dog.</s>"
            "USER: What color? ASSISTANT:",
        ),
        (
            LlavaV1Template(),
            f"{V0_SYSTEM} USER: <image>\nWhat is it? ASSISTANT:",
            f"{V0_SYSTEM} USER: <image>\nWhat is it? ASSISTANT: A dog.</s>"
            "USER: What color? ASSISTANT:",
        ),
    ],
)
def test_prompts_end_with_the_assistant_role_and_prefix_the_training_text(
    template: V0Template, first_prompt: str, second_prompt: str
) -> None:
    assert template.render_prompt(TWO_TURNS[:1]) == first_prompt
    assert template.render_prompt(TWO_TURNS[:3]) == second_prompt
    # Generation continues the exact text the model was trained on.
    assert joined(template.render(TWO_TURNS)).startswith(second_prompt + " Brown.")


def test_stop_strings() -> None:
    assert V0Template.stop_strings == ("###",)
    assert V1Template.stop_strings == ("</s>",)
    assert LlavaV1Template.stop_strings == ("</s>",)


@pytest.mark.parametrize("template", [V0Template(), V1Template(), LlavaV1Template()])
@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([], "conversation is empty"),
        ([Message("assistant", "Hi.")], "messages[0] has role 'assistant' where 'user'"),
        (
            [Message("user", "Q?"), Message("user", "Q2?"), Message("assistant", "A.")],
            "messages[1] has role 'user' where 'assistant'",
        ),
        (
            [Message("user", "Q?"), Message("assistant", "A."), Message("user", "Q2?")],
            "the last message has role 'user'; training needs",
        ),
    ],
)
def test_render_rejects_badly_ordered_conversations(
    template: V0Template, messages: list[Message], expected: str
) -> None:
    with pytest.raises(DataError, match=f"template '{template.name}'") as error:
        template.render(messages)
    assert expected in str(error.value)


def test_render_prompt_needs_a_final_user_message() -> None:
    with pytest.raises(DataError, match="the last message has role 'assistant'; a prompt needs"):
        V1Template().render_prompt(TWO_TURNS)


def test_check_tokenizer_accepts_a_tokenizer_whose_eos_is_slash_s(
    tiny_tokenizer: PreTrainedTokenizerFast,
) -> None:
    for template in (V0Template(), V1Template(), LlavaV1Template()):
        template.check_tokenizer(tiny_tokenizer)


@pytest.mark.parametrize("template", [V1Template(), LlavaV1Template()])
def test_check_tokenizer_rejects_a_tokenizer_with_another_eos(
    template: V1Template, other_eos_tokenizer: PreTrainedTokenizerFast
) -> None:
    with pytest.raises(DataError) as error:
        template.check_tokenizer(other_eos_tokenizer)
    message = str(error.value)
    assert f"template {template.name!r}" in message
    assert "'<|endoftext|>'" in message
    assert "pick a template whose separator matches" in message


def test_v0_does_not_depend_on_the_eos_token(other_eos_tokenizer: PreTrainedTokenizerFast) -> None:
    V0Template().check_tokenizer(other_eos_tokenizer)
