"""Checks that a template's separators are the single tokens the template needs."""

from __future__ import annotations

from typing import Literal

from transformers import PreTrainedTokenizerBase

from llava_kit.errors import DataError

_HINT = (
    "pick a template whose separator matches the tokenizer's special tokens (v1, llava_v1, "
    "llava_llama_2 and mistral_instruct are for Llama/Vicuna/Mistral tokenizers, chatml_direct "
    "for tokenizers with <|im_start|> and <|im_end|>), or use v0"
)


def require_single_token(
    template_name: str,
    tokenizer: PreTrainedTokenizerBase,
    text: str,
    *,
    role: Literal["eos", "bos"] | None = None,
    purpose: str,
) -> None:
    """Raise DataError unless ``text`` encodes to one token (the tokenizer's ``role`` token,
    when given): split in pieces, the model could not learn to write it in one step."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    expected = None if role is None else getattr(tokenizer, f"{role}_token_id")
    if len(ids) == 1 and (role is None or ids == [expected]):
        return
    if role is None:
        problem = f"this tokenizer encodes {text!r} to {ids}, not to one token"
    else:
        token = getattr(tokenizer, f"{role}_token")
        problem = (
            f"this tokenizer's {role} token is {token!r} and {text!r} encodes to {ids}, not to "
            f"the single {role} id {expected}"
        )
    raise DataError(f"template {template_name!r} {purpose} {text!r}, but {problem}", hint=_HINT)
