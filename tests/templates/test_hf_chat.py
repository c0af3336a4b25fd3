"""``hf_chat``: the tokenizer's own chat template, its trained spans found from renderings
of that template, checked token by token against its generation prompts."""

from __future__ import annotations

import copy

import pytest
from transformers import PreTrainedTokenizerBase

from llava_kit.constants import IGNORE_INDEX
from llava_kit.errors import DataError
from llava_kit.templates.base import Message, StopInAnswer
from llava_kit.templates.fit import check_template_fits
from llava_kit.templates.hf_chat import HfChatOptions, HfChatTemplate
from llava_kit.templates.tokenize import tokenize_conversation, tokenize_prompt

# Qwen2-style ChatML: a newline after every <|im_end|>, a default system message.
CHATML = (
    "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are helpful.<|im_end|>\\n' }}{% endif %}"
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Llama-3/Zephyr-style: the BOS token written by the template, eos closing answers.
WITH_BOS = (
    "{{ bos_token }}{% for m in messages %}{{ '### ' + m['role'] + ':\\n' + m['content'] | trim }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '### assistant:\\n' }}{% endif %}"
)
CONVERSATION = [
    Message("user", "<image>\nHow many apples?"), Message("assistant", "42"),
    Message("user", "Say it in words."), Message("assistant", '"Forty-two", Über 東京.'),
]


def _with_template(tokenizer: PreTrainedTokenizerBase, jinja: str | None) -> PreTrainedTokenizerBase:
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.chat_template = jinja
    return tokenizer


def _as_dicts(messages: list[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


@pytest.mark.parametrize("jinja", [CHATML, WITH_BOS], ids=["chatml", "bos_in_template"])
@pytest.mark.parametrize("fixture", ["byte_bpe_tokenizer", "sp_llama_tokenizer"])
def test_trained_tokens_start_where_the_generation_prompt_ends(
    jinja: str, fixture: str, request: pytest.FixtureRequest
) -> None:
    tokenizer = _with_template(request.getfixturevalue(fixture), jinja)
    template = HfChatTemplate().for_tokenizer(tokenizer)
    check_template_fits(template, tokenizer)
    end = "<|im_end|>" if jinja is CHATML else tokenizer.eos_token
    assert template.stop_strings == (end,)

    segments = template.render(CONVERSATION)
    full = tokenizer.apply_chat_template(_as_dicts(CONVERSATION), tokenize=False)
    if jinja is WITH_BOS and tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]:
        full = full[len(tokenizer.bos_token):]  # tokenizing adds it once, not twice
    assert "".join(s.text for s in segments) == full
    assert [s.text for s in segments if s.trained] == [
        "42" + end, '"Forty-two", Über 東京.' + end]

    tokens = tokenize_conversation(segments, tokenizer, sample_id="s")
    for answer in (1, 3):
        prompt = tokenize_prompt(template.render_prompt(CONVERSATION[:answer]), tokenizer)
        assert tokens.input_ids[: len(prompt)] == prompt
        assert tokens.labels[len(prompt) - 1] == IGNORE_INDEX
        assert tokens.labels[len(prompt)] != IGNORE_INDEX  # the first token generation writes
    if tokenizer.bos_token_id is not None:
        assert tokens.input_ids.count(tokenizer.bos_token_id) <= 1


def test_a_system_message_comes_first(byte_bpe_tokenizer: PreTrainedTokenizerBase) -> None:
    tokenizer = _with_template(byte_bpe_tokenizer, CHATML)
    template = HfChatTemplate(HfChatOptions(system="Be brief.")).for_tokenizer(tokenizer)
    prompt = template.render_prompt(CONVERSATION[:1])
    assert prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")
    assert "You are helpful." not in prompt


def test_an_answer_holding_the_end_marker_is_a_stop_in_answer(
    byte_bpe_tokenizer: PreTrainedTokenizerBase,
) -> None:
    template = HfChatTemplate().for_tokenizer(_with_template(byte_bpe_tokenizer, CHATML))
    with pytest.raises(StopInAnswer, match="answer 1 contains '<\\|im_end\\|>'"):
        template.render([Message("user", "hi"), Message("assistant", "a<|im_end|>b")])


@pytest.mark.parametrize(("jinja", "message"), [
    (None, "has none"),
    ("{% for m in messages %}{{ m['content'] }}{% endfor %}", "no end-of-turn marker"),
    # Renders only the last turn: earlier turns change once an answer follows.
    ("{{ messages[-1]['content'] }}{% if messages[-1]['role'] == 'assistant' %}</s>{% endif %}"
     "{% if add_generation_prompt %}A:{% endif %}", "no end-of-turn marker|renders the turns"),
])
def test_templates_it_cannot_train_are_named(
    jinja: str | None, message: str, byte_bpe_tokenizer: PreTrainedTokenizerBase
) -> None:
    with pytest.raises(DataError, match=message):
        HfChatTemplate().for_tokenizer(_with_template(byte_bpe_tokenizer, jinja))
