"""Token ids with the characters each token covers, from fast and SentencePiece tokenizers.

Label masks are built from character offsets. A fast tokenizer reports them itself; a
slow SentencePiece tokenizer (the reference's ``use_fast=False``) does not, so its pieces
are laid back onto the text: ``▁`` is a space, ``<0xNN>`` pieces are the UTF-8 bytes of
one character, special tokens are their own text, and a ``▁`` that the text does not have
is SentencePiece's dummy prefix (covering nothing; the mask gives it to the next
character). Pieces that do not spell the text are an error, never a guess.
"""

from __future__ import annotations

import re
from typing import NoReturn

from transformers import PreTrainedTokenizerBase

from llava_kit.errors import DataError, ModelError

Offsets = list[tuple[int, tuple[int, int]]]
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_SPACE = "▁"


def encode_with_offsets(
    tokenizer: PreTrainedTokenizerBase, text: str, *, sample_id: str
) -> Offsets:
    """(token id, (start, end)) for every token of ``text``, no special tokens added."""
    if getattr(tokenizer, "is_fast", False):
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(zip(encoding["input_ids"], encoding["offset_mapping"]))
    if not hasattr(tokenizer, "sp_model"):
        raise ModelError(
            f"tokenizer {type(tokenizer).__name__} is neither a fast nor a SentencePiece "
            "tokenizer; llava-kit needs to know which characters each token covers to build "
            "the loss mask",
            hint="set model.llm.use_fast_tokenizer: true",
        )
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return list(zip(ids, _lay_pieces(tokenizer, text, ids, sample_id)))


def _lay_pieces(
    tokenizer: PreTrainedTokenizerBase, text: str, ids: list[int], sample_id: str
) -> list[tuple[int, int]]:
    special = set(tokenizer.all_special_tokens) | set(tokenizer.get_added_vocab())
    spans: list[tuple[int, int]] = []
    cursor = 0
    pending = bytearray()  # bytes of a character spelled by <0xNN> pieces
    for piece in tokenizer.convert_ids_to_tokens(ids):
        byte = _BYTE_PIECE.fullmatch(piece)
        if byte is not None:
            pending.append(int(byte.group(1), 16))
            spans.append((cursor, cursor))
            char = _complete_char(pending)
            if char is None and len(pending) >= 4:
                _fail(text, cursor, piece, sample_id)
            if char is not None:
                if not text.startswith(char, cursor):
                    _fail(text, cursor, piece, sample_id)
                # Every byte piece of a character covers the whole character.
                first = len(spans) - len(pending)
                spans[first:] = [(cursor, cursor + len(char))] * len(pending)
                cursor += len(char)
                pending.clear()
            continue
        start, end = _place(piece, piece in special, text, cursor, sample_id)
        spans.append((start, end))
        cursor = end
    if pending or text[cursor:].strip():
        _fail(text, cursor, "(end of the tokens)", sample_id)
    return spans


def _complete_char(pending: bytearray) -> str | None:
    try:
        return pending.decode("utf-8")
    except UnicodeDecodeError:
        return None  # more bytes to come, or (at four) not UTF-8 at all


def _place(
    piece: str, is_special: bool, text: str, cursor: int, sample_id: str
) -> tuple[int, int]:
    surface = piece if is_special else piece.replace(_SPACE, " ")
    # Spaces an added token strips around itself have no token; step over them.
    position = cursor
    while True:
        if text.startswith(surface, position):
            return position, position + len(surface)
        if not is_special and surface.startswith(" ") and text.startswith(surface[1:], position):
            return position, position + len(surface) - 1  # the dummy prefix
        if position < len(text) and text[position].isspace():
            position += 1
            continue
        _fail(text, cursor, piece, sample_id)


def _fail(text: str, cursor: int, piece: str, sample_id: str) -> NoReturn:
    raise DataError(
        f"sample {sample_id!r}: the tokenizer's piece {piece!r} does not spell the text at "
        f"character {cursor} ({text[cursor:cursor + 20]!r}), so llava-kit cannot tell which "
        "tokens belong to the answers",
        hint="characters the tokenizer maps to its unknown token cause this; remove them, or "
        "set model.llm.use_fast_tokenizer: true",
    )
