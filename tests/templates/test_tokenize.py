from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import processors
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from llava_kit.constants import IGNORE_INDEX, IMAGE_TOKEN_ID
from llava_kit.errors import DataError, ModelError
from llava_kit.templates.base import ChatTemplate, Message, Segment
from llava_kit.templates.plain import PlainTemplate
from llava_kit.templates.tokenize import (
    TokenizedConversation,
    tokenize_conversation,
    tokenize_prompt,
)
from llava_kit.templates.vicuna import LlavaV1Template, V0Template, V1Template

ANSWERS = ["The dog is running on the grass.", "There are two cats.", "It is sunny and warm."]
QUESTIONS = ["What is in the image?", "How many cats are there?", "What is the weather like?"]


def conversation(first_question: str) -> list[Message]:
    questions = [first_question, *QUESTIONS[1:]]
    messages = []
    for question, answer in zip(questions, ANSWERS):
        messages += [Message("user", question), Message("assistant", answer)]
    return messages


def reference_ids(text: str, tokenizer: PreTrainedTokenizerFast) -> list[int]:
    """The reference's tokenizer_image_token: BOS from the first chunk only, -200 per image."""
    first, *rest = text.split("<image>")
    ids = tokenizer(first)["input_ids"]
    for chunk in rest:
        ids += [IMAGE_TOKEN_ID] + tokenizer(chunk, add_special_tokens=False)["input_ids"]
    return ids


def trained_runs(result: TokenizedConversation) -> list[list[int]]:
    """Maximal runs of consecutive trained positions."""
    runs: list[list[int]] = []
    previous_trained = False
    for position, label in enumerate(result.labels):
        trained = label != IGNORE_INDEX
        if trained and not previous_trained:
            runs.append([])
        if trained:
            runs[-1].append(position)
        previous_trained = trained
    return runs


def check_mask(
    template: ChatTemplate,
    messages: list[Message],
    tokenizer: PreTrainedTokenizerFast,
    expected_trained: list[str],
    num_images: int,
) -> TokenizedConversation:
    segments = template.render(messages)
    text = "".join(segment.text for segment in segments)
    result = tokenize_conversation(segments, tokenizer, sample_id="s1")

    assert result.input_ids == reference_ids(text, tokenizer)
    assert len(result.labels) == len(result.input_ids)
    assert result.num_images == num_images
    assert result.input_ids.count(IMAGE_TOKEN_ID) == num_images
    assert result.input_ids.count(tokenizer.bos_token_id) == 1
    assert result.input_ids[0] == tokenizer.bos_token_id
    for token_id, label in zip(result.input_ids, result.labels):
        assert label in (IGNORE_INDEX, token_id)

    runs = trained_runs(result)
    decoded = [tokenizer.decode([result.input_ids[p] for p in run]) for run in runs]
    assert decoded == expected_trained
    # Answer i starts right after the prompt for answer i: prompt and training agree.
    for index, run in enumerate(runs):
        prompt = template.render_prompt(messages[: 2 * index + 1])
        prompt_ids = reference_ids(prompt, tokenizer)
        assert run[0] == len(prompt_ids)
        assert result.input_ids[: run[0]] == prompt_ids
    return result


@pytest.mark.parametrize("first_question", [QUESTIONS[0], f"<image>\n{QUESTIONS[0]}"])
@pytest.mark.parametrize(
    ("template", "closing"),
    [(V0Template(), "\n###"), (V1Template(), "</s>"), (LlavaV1Template(), "</s>")],
)
def test_three_turn_masks_train_exactly_the_answers_and_their_closing(
    template: ChatTemplate,
    closing: str,
    first_question: str,
    tiny_tokenizer: PreTrainedTokenizerFast,
) -> None:
    messages = conversation(first_question)
    expected = [answer + closing for answer in ANSWERS]
    result = check_mask(
        template, messages, tiny_tokenizer, expected, num_images=first_question.count("<image>")
    )
    trained_text = "".join(
        tiny_tokenizer.decode([result.input_ids[p] for p in run]) for run in trained_runs(result)
    )
    assert trained_text == "".join(expected)  # e.g. "{a1}</s>{a2}</s>{a3}</s>" for v1


@pytest.mark.parametrize(
    "question", ["<image>\nDescribe the image concisely.", "Describe it.\n<image>"]
)
def test_plain_trains_caption_and_newline_after_the_image(
    question: str, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    caption = "A dog runs across a green field."
    messages = [Message("user", question), Message("assistant", caption)]
    result = check_mask(PlainTemplate(), messages, tiny_tokenizer, [caption + "\n"], num_images=1)
    bos = tiny_tokenizer.bos_token_id
    assert result.input_ids[:2] == [bos, IMAGE_TOKEN_ID]
    assert result.labels[:2] == [IGNORE_INDEX, IGNORE_INDEX]
    assert all(label != IGNORE_INDEX for label in result.labels[2:])


def test_v1_token_by_token(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    messages = [
        Message("user", "<image>\nWhat is in the image?"),
        Message("assistant", "A dog runs."),
        Message("user", "Color?"),
        Message("assistant", "Brown."),
    ]
    result = tokenize_conversation(V1Template().render(messages), tiny_tokenizer, sample_id="s1")
    pieces = [
        "<image>" if token_id == IMAGE_TOKEN_ID else tiny_tokenizer.convert_ids_to_tokens(token_id)
        for token_id in result.input_ids
    ]
    start = pieces.index("▁USER:")
    assert all(label == IGNORE_INDEX for label in result.labels[:start])
    # "▁A" carries the untrained space after "ASSISTANT:" and is trained, as in the reference.
    trained = [label != IGNORE_INDEX for label in result.labels]
    assert list(zip(pieces[start:], trained[start:])) == [
        ("▁USER:", False), ("▁", False), ("<image>", False), ("▁", False), ("\n", False),
        ("W", False), ("hat", False), ("▁is", False), ("▁in", False), ("▁the", False),
        ("▁image?", False), ("▁ASSISTANT:", False),
        ("▁A", True), ("▁dog", True), ("▁runs", True), (".", True), ("</s>", True),
        ("US", False), ("ER:", False), ("▁C", False), ("ol", False), ("or", False), ("?", False),
        ("▁ASSISTANT:", False),
        ("▁B", True), ("r", True), ("ow", True), ("n", True), (".", True), ("</s>", True),
    ]  # fmt: skip


def test_several_images_each_take_one_position(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    messages = [
        Message("user", "<image>\n<image>\nWhat is in the image?"),
        Message("assistant", ANSWERS[0]),
        Message("user", "<image>\nHow many cats are there?"),
        Message("assistant", ANSWERS[1]),
    ]
    expected = [ANSWERS[0] + "</s>", ANSWERS[1] + "</s>"]
    result = check_mask(V1Template(), messages, tiny_tokenizer, expected, num_images=3)
    image_positions = [i for i, token in enumerate(result.input_ids) if token == IMAGE_TOKEN_ID]
    assert [result.labels[i] for i in image_positions] == [IGNORE_INDEX] * 3


def test_a_token_reaching_back_into_the_prompt_is_a_mismatch(
    tiny_tokenizer: PreTrainedTokenizerFast,
) -> None:
    # Generation from "Q: The d" could never produce "▁dog": the prompt already holds "▁d".
    segments = [Segment("Q: The d", False), Segment("og runs.", True)]
    expected = r"sample 's1': token '▁dog' \(text ' dog'\) starts in the prompt"
    with pytest.raises(DataError, match=expected):
        tokenize_conversation(segments, tiny_tokenizer, sample_id="s1")


def test_a_token_running_past_a_trained_answer_is_a_mismatch(
    tiny_tokenizer: PreTrainedTokenizerFast,
) -> None:
    segments = [Segment("Q: hi", False), Segment(" The do", True), Segment("g runs.", False)]
    expected = r"sample 'coco-42': token '▁dog' \(text ' dog'\) runs past"
    with pytest.raises(DataError, match=expected):
        tokenize_conversation(segments, tiny_tokenizer, sample_id="coco-42")


def test_v1_with_a_tokenizer_lacking_slash_s_fails_naming_the_sample(
    other_eos_tokenizer: PreTrainedTokenizerFast,
) -> None:
    messages = [
        Message("user", "What is in the image?"),
        Message("assistant", "The dog is running on the grass."),
        Message("user", "What color is the bus?"),
        Message("assistant", "The bus is red."),
    ]
    with pytest.raises(DataError) as error:
        segments = V1Template().render(messages)
        tokenize_conversation(segments, other_eos_tokenizer, sample_id="sqa-17")
    message = str(error.value)
    assert "sample 'sqa-17'" in message
    assert "the chat template and the tokenizer disagree" in message
    assert "'</s>'" in message  # the hint names the separator to check


def test_a_conversation_without_trained_text_is_rejected(
    tiny_tokenizer: PreTrainedTokenizerFast,
) -> None:
    segments = [Segment("USER: hi ASSISTANT:", False)]
    expected = "sample 'x9': the rendered conversation has no trained text"
    with pytest.raises(DataError, match=expected):
        tokenize_conversation(segments, tiny_tokenizer, sample_id="x9")


@pytest.mark.parametrize("trained_text", ["<image>", ""])
def test_a_trained_piece_without_tokens_is_rejected(
    trained_text: str, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    segments = [Segment("Look:", False), Segment(trained_text, True), Segment(" The dog.", True)]
    expected = f"sample 'x10': the trained text {trained_text!r} produced no"
    with pytest.raises(DataError, match=expected):
        tokenize_conversation(segments, tiny_tokenizer, sample_id="x10")


def test_no_bos_when_the_tokenizer_adds_none(tiny_tokenizer_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="$A", pair="$A $B"
    )
    segments = [Segment("<image>\nQ: hi", False), Segment(" The dog.", True)]
    result = tokenize_conversation(segments, tokenizer, sample_id="s1")
    assert result.input_ids[0] == IMAGE_TOKEN_ID
    assert tokenizer.bos_token_id not in result.input_ids
    assert result.input_ids == reference_ids("<image>\nQ: hi The dog.", tokenizer)
    assert tokenize_prompt("<image>\nQ:", tokenizer)[0] == IMAGE_TOKEN_ID


def test_tokenize_prompt_matches_the_reference_layout(
    tiny_tokenizer: PreTrainedTokenizerFast,
) -> None:
    prompt = V1Template().render_prompt([Message("user", "<image>\nWhat is in the image?")])
    ids = tokenize_prompt(prompt, tiny_tokenizer)
    assert ids == reference_ids(prompt, tiny_tokenizer)
    assert ids.count(IMAGE_TOKEN_ID) == 1
    assert tiny_tokenizer.convert_ids_to_tokens(ids[-1]) == "▁ASSISTANT:"
    bos = tiny_tokenizer.bos_token_id
    assert tokenize_prompt("<image>", tiny_tokenizer) == [bos, IMAGE_TOKEN_ID]
    two_images = tokenize_prompt("<image><image>", tiny_tokenizer)
    assert two_images == [bos, IMAGE_TOKEN_ID, IMAGE_TOKEN_ID]


def test_a_slow_tokenizer_without_sentencepiece_is_refused() -> None:
    class SlowTokenizer:
        is_fast = False
        bos_token_id = None

    segments = [Segment("Q:", False), Segment(" A.", True)]
    with pytest.raises(ModelError, match="SlowTokenizer is neither a fast nor a SentencePiece"):
        tokenize_conversation(segments, SlowTokenizer(), sample_id="s1")  # type: ignore[arg-type]
