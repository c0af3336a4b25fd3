"""How likely the model finds a continuation of a prompt: lmms-eval's ``loglikelihood``
requests (multiple-choice tasks score every option this way).

A continuation is scored as the answer the model was trained to write. The run's template
renders the conversation with it as the assistant's answer, and the scored text runs from
where the generation prompt ends to the end of the answer, without the template's closing
text (``</s>``, ``<|im_end|>``). The template, not lmms-eval's target delimiter (the space
in front of every continuation), decides the spacing. The scored tokens are those of
prompt + answer past the longest common prefix with the prompt's own tokens.

Rows are sorted by length and right-padded: padding after a row never reaches its tokens
under causal attention, so a row scores the same in any batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import torch

from llava_kit.constants import IGNORE_INDEX
from llava_kit.data.collate import Collator, Example
from llava_kit.errors import ModelError
from llava_kit.evaluators.generation import PromptItem, expanded_length, preprocess_image
from llava_kit.templates.base import ChatTemplate, Message
from llava_kit.templates.tokenize import tokenize_prompt

if TYPE_CHECKING:
    from llava_kit.model.vlm import LlavaModel


@dataclass(frozen=True)
class _Row:
    item: PromptItem
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX except on the continuation's tokens
    length: int  # after each image marker is expanded to the visual tokens


def continuation_logprobs(
    model: "LlavaModel",
    template: ChatTemplate,
    requests: Sequence[tuple[PromptItem, str]],
    *,
    batch_size: int = 16,
) -> list[tuple[float, bool]]:
    """(log-probability, whether greedy decoding writes it) per (prompt, continuation)."""
    rows = [_row(model, template, item, continuation) for item, continuation in requests]
    order = sorted(range(len(rows)), key=lambda index: -rows[index].length)
    scores: dict[int, tuple[float, bool]] = {}
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            scores.update(zip(chunk, _score_batch(model, [rows[i] for i in chunk])))
    finally:
        for module, training in modes.items():
            module.training = training
    return [scores[index] for index in range(len(rows))]


def _row(model: "LlavaModel", template: ChatTemplate, item: PromptItem, continuation: str) -> _Row:
    tokenizer = model.tokenizer
    prompt = template.render_prompt(item.messages)
    answer = continuation.lstrip()
    segments = template.render([*item.messages, Message("assistant", answer)])
    trained = [index for index, segment in enumerate(segments) if segment.trained]
    answer_segment = segments[trained[-1]].text if trained else ""
    end = answer_segment.find(answer)
    if end < 0:
        raise ModelError(
            f"prompt {item.id!r}: template {type(template).__name__} renders the answer "
            f"{answer!r} as {answer_segment!r}, so its tokens cannot be told apart",
            hint="evaluate this task by generation, or with another template",
        )
    prompt_ids = tokenize_prompt(prompt, tokenizer)
    full_ids = tokenize_prompt(prompt + answer_segment[: end + len(answer)], tokenizer)
    shared = 0
    while shared < min(len(prompt_ids), len(full_ids)) and prompt_ids[shared] == full_ids[shared]:
        shared += 1
    labels = [IGNORE_INDEX] * shared + full_ids[shared:]
    return _Row(item, full_ids, labels, expanded_length(full_ids, model))


@torch.no_grad()
def _score_batch(model: "LlavaModel", rows: list[_Row]) -> list[tuple[float, bool]]:
    examples: list[Example] = []
    for row in rows:
        example: Example = {"id": row.item.id, "input_ids": row.input_ids, "labels": row.labels}
        if row.item.images:
            example["pixel_values"] = torch.stack(
                [preprocess_image(model, image, row.item.id) for image in row.item.images]
            )
        examples.append(example)
    width = max(row.length for row in rows)
    collate = Collator(model.num_visual_tokens, model.tokenizer.pad_token_id, width, "right")
    batch = collate(examples)
    device = model.device
    pixels = batch["pixel_values"]
    logits = model(
        batch["input_ids"].to(device), batch["attention_mask"].to(device),
        pixel_values=pixels.to(device) if pixels is not None else None,
    ).logits[:, :-1].float()
    targets = batch["labels"][:, 1:].to(logits.device)
    scored = targets != IGNORE_INDEX
    token_logprobs = torch.log_softmax(logits, dim=-1).gather(
        -1, targets.clamp(min=0).unsqueeze(-1)
    ).squeeze(-1)
    greedy = logits.argmax(dim=-1) == targets
    return [
        (float(token_logprobs[i][scored[i]].sum()), bool(greedy[i][scored[i]].all()))
        for i in range(len(rows))
    ]
