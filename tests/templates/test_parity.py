"""Input ids and labels of every template, token by token, on two real tokenizer families.

The expected ids come from outside llava-kit: for the LLaMA-style SentencePiece tokenizer,
what the reference's slow legacy tokenizer computes (special tokens split the text, every
other piece is encoded by SentencePiece with its dummy prefix, BOS in front; the text
between images tokenized on its own, as tokenizer_image_token does); for the byte-level
BPE tokenizer, the tokenizer itself. The expected labels come from the rule alone: the
tokens of answer i are those between the generation prompt of answer i and the text that
ends it, both tokenized with the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import sentencepiece
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from llava_kit.constants import IGNORE_INDEX, IMAGE_PLACEHOLDER, IMAGE_TOKEN_ID
from llava_kit.llms.hf_causal_lm import HFCausalLM, HFCausalLMOptions
from llava_kit.plugins.registry import get_registry
from llava_kit.templates.base import ChatTemplate, Message
from llava_kit.templates.fit import check_template_fits
from llava_kit.templates.tokenize import tokenize_conversation, tokenize_prompt
from llava_kit.templates.vicuna import V1Template

Reference = Callable[[str], list[int]]
TEMPLATES = ["v0", "v1", "llava_v1", "llava_llama_2", "mistral_instruct", "chatml_direct"]
# Multi-turn, two images (one in a later turn), text-only turns, and answers that start
# with a digit, a quote, a space, punctuation and non-ASCII letters.
CHAT = [
    ("<image>\nHow many dogs are there?", "3"),
    ("Quote the sign.", '"Yes", it is.'),
    ("<image>\nAnd in this image?", " Two, maybe."),
    ("Where is it?", "東京, Über dem Tisch."),
    ("Anything else?", "...no."),
]
QUESTION_FIRST = [("How many apples?\n<image>", "42"), ("Sure?", "(A) yes.")]
TEXT_ONLY = [("What is 6 x 7?", "42"), ("Why?", "Because 6 x 7 = 42.")]
CONVERSATIONS = [CHAT, QUESTION_FIRST, TEXT_ONLY]
CONVERSATION_IDS = ["chat", "question_first", "text_only"]
CAPTIONS = ["3 dogs on the grass.", " A leading space.", "Über 東京."]


def messages_of(rounds: list[tuple[str, str]]) -> list[Message]:
    roles = ("user", "assistant")
    return [Message(role, text) for pair in rounds for role, text in zip(roles, pair)]


def build(name: str) -> ChatTemplate:
    return get_registry().get("template", name).component()


@pytest.fixture(scope="module")
def slow_legacy_ids(sp_llama_dir: Path) -> Reference:
    """The reference's ids: tokenizer_image_token with transformers 4's slow legacy LLaMA
    tokenizer, written out with SentencePiece alone."""
    model_file = str(sp_llama_dir / "tokenizer.model")
    model = sentencepiece.SentencePieceProcessor(model_file=model_file)
    special = {piece: model.piece_to_id(piece)
               for piece in ("<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>")}

    def encode(text: str) -> list[int]:
        ids: list[int] = []
        while text:
            found = [(text.find(piece), piece) for piece in special if piece in text]
            position, piece = min(found) if found else (len(text), "")
            if position:
                ids += model.encode(text[:position])
            if piece:
                ids.append(special[piece])
            text = text[position + len(piece):]
        return ids

    return lambda text: image_token_layout(text, encode, bos=[special["<s>"]])


@pytest.fixture(scope="module")
def byte_bpe_ids(byte_bpe_tokenizer: PreTrainedTokenizerFast) -> Reference:
    return lambda text: image_token_layout(
        text, lambda chunk: byte_bpe_tokenizer(chunk, add_special_tokens=False)["input_ids"], bos=[]
    )


def image_token_layout(text: str, encode: Callable[[str], list[int]], bos: list[int]) -> list[int]:
    ids = list(bos)
    for index, chunk in enumerate(text.split(IMAGE_PLACEHOLDER)):
        if index:
            ids.append(IMAGE_TOKEN_ID)
        if chunk:
            ids += encode(chunk)
    return ids


def expected_labels(
    template: ChatTemplate, messages: list[Message], reference: Reference
) -> list[int]:
    """Answer i's tokens: after its generation prompt, up to the end of its trained text."""
    segments = template.render(messages)
    ids = reference("".join(segment.text for segment in segments))
    labels = [IGNORE_INDEX] * len(ids)
    for index in range(len(messages) // 2):
        start = len(reference(template.render_prompt(messages[: 2 * index + 1])))
        end = len(reference("".join(segment.text for segment in segments[: 2 * index + 2])))
        labels[start:end] = ids[start:end]
    return labels


def check_parity(
    template: ChatTemplate, rounds: list[tuple[str, str]], tokenizer: PreTrainedTokenizerBase,
    reference: Reference,
) -> None:
    messages = messages_of(rounds)
    check_template_fits(template, tokenizer)
    result = tokenize_conversation(template.render(messages), tokenizer, sample_id="s")
    text = "".join(segment.text for segment in template.render(messages))
    assert result.input_ids == reference(text)
    assert result.labels == expected_labels(template, messages, reference)
    for index in range(len(rounds)):
        prompt = template.render_prompt(messages[: 2 * index + 1])
        assert tokenize_prompt(prompt, tokenizer) == reference(prompt)


@pytest.mark.parametrize("rounds", CONVERSATIONS, ids=CONVERSATION_IDS)
@pytest.mark.parametrize("name", TEMPLATES)
def test_round_templates_match_the_slow_legacy_llama_tokenizer(
    name: str, rounds: list[tuple[str, str]], sp_llama_tokenizer: PreTrainedTokenizerBase,
    slow_legacy_ids: Reference,
) -> None:
    check_parity(build(name), rounds, sp_llama_tokenizer, slow_legacy_ids)


@pytest.mark.parametrize("rounds", CONVERSATIONS, ids=CONVERSATION_IDS)
@pytest.mark.parametrize("name", TEMPLATES)
def test_round_templates_on_a_byte_level_bpe_tokenizer(
    name: str, rounds: list[tuple[str, str]], byte_bpe_tokenizer: PreTrainedTokenizerFast,
    byte_bpe_ids: Reference,
) -> None:
    check_parity(build(name), rounds, byte_bpe_tokenizer, byte_bpe_ids)


@pytest.mark.parametrize("caption", CAPTIONS)
def test_plain_on_both_tokenizers(
    caption: str, sp_llama_tokenizer: PreTrainedTokenizerBase, slow_legacy_ids: Reference,
    byte_bpe_tokenizer: PreTrainedTokenizerFast, byte_bpe_ids: Reference,
) -> None:
    rounds = [("<image>\nDescribe the image briefly.", caption)]
    check_parity(build("plain"), rounds, sp_llama_tokenizer, slow_legacy_ids)
    check_parity(build("plain"), rounds, byte_bpe_tokenizer, byte_bpe_ids)


def test_the_space_before_a_digit_answer_is_trained(
    sp_llama_tokenizer: PreTrainedTokenizerBase,
) -> None:
    # "ASSISTANT: 42" ends "... : ▁ 4 2 </s>": generation from the prompt, which ends at
    # the colon, must write the lone "▁", so it is trained; the colon is not.
    messages = messages_of([("How many apples?", "42")])
    result = tokenize_conversation(V1Template().render(messages), sp_llama_tokenizer, sample_id="s")
    pieces = sp_llama_tokenizer.convert_ids_to_tokens(result.input_ids)
    trained = [label != IGNORE_INDEX for label in result.labels]
    assert list(zip(pieces, trained))[-5:] == [
        (":", False), ("▁", True), ("4", True), ("2", True), ("</s>", True),
    ]
    assert not any(trained[:-4])


def test_the_llm_options_of_the_paper_recipes_load_the_slow_legacy_tokenizer(
    sp_llama_dir: Path, slow_legacy_ids: Reference,
) -> None:
    options = HFCausalLMOptions(
        path=str(sp_llama_dir), use_fast_tokenizer=False, tokenizer_legacy=True
    )
    tokenizer = HFCausalLM(options).load_tokenizer()
    assert not tokenizer.is_fast
    messages = messages_of(QUESTION_FIRST)
    text = "".join(segment.text for segment in V1Template().render(messages))
    result = tokenize_conversation(V1Template().render(messages), tokenizer, sample_id="s")
    assert result.input_ids == slow_legacy_ids(text)
