"""The slow (SentencePiece) LLaMA tokenizer, as ``use_fast=False`` loads it in the reference.

transformers 5 has no slow LLaMA class any more: ``AutoTokenizer`` always rebuilds a
LLaMA tokenizer on the ``tokenizers`` library, which splits some texts differently from
the SentencePiece model the paper's runs used (a text starting with a space gets one
token fewer). This class runs the SentencePiece model itself, through transformers'
SentencePiece base: special tokens split the text, every other piece is encoded by
SentencePiece (in legacy mode with its dummy prefix, as the reference saw it), BOS/EOS are
added as the tokenizer config says, and decoding goes through SentencePiece so byte
pieces (newlines, rare characters) come back as text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

# What the saved folder names as its class: transformers' own LLaMA tokenizer reads it, so
# an exported model's tokenizer loads without llava-kit.
SAVED_CLASS = "LlamaTokenizer"
_WORD_BOUNDARY = "▁"
# (add_bos_token, add_eos_token) -> how the SentencePiece base adds special tokens.
_PATTERNS = {
    (True, False): "bos", (True, True): "bos_eos", (False, True): "eos", (False, False): "none",
}


class SentencePieceLlamaTokenizer(SentencePieceBackend):
    """A LLaMA-family tokenizer computed by its SentencePiece model (``tokenizer.model``)."""

    def __init__(self, *, add_bos_token: bool = True, add_eos_token: bool = False,
                 **kwargs: Any) -> None:
        kwargs.setdefault("special_tokens_pattern", _PATTERNS[(add_bos_token, add_eos_token)])
        super().__init__(**kwargs)
        self.add_bos_token, self.add_eos_token = add_bos_token, add_eos_token

    def tokenize(self, text: str, **kwargs: Any) -> list[str]:
        """Outside legacy mode only the start of the text is a word boundary, as in
        transformers 4's LLaMA tokenizer (the SentencePiece base leaves even that out)."""
        if self.legacy or not text:
            return super().tokenize(text, **kwargs)
        tokens = super().tokenize(_WORD_BOUNDARY + text.replace(_WORD_BOUNDARY, " "), **kwargs)
        # A text that opens with a special token has no word to start.
        if tokens[:1] == [_WORD_BOUNDARY] and tokens[1:2] and tokens[1] in self.all_special_tokens:
            return tokens[1:]
        return tokens

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Ordinary pieces decoded by SentencePiece run by run; special tokens as written."""
        special = set(self.all_special_tokens) | set(self.added_tokens_encoder)
        text, run = "", []
        for token in tokens:
            if token in special:
                text += self.sp_model.decode_pieces(run) + token
                run = []
            else:
                run.append(token)
        return text + self.sp_model.decode_pieces(run)

    def save_pretrained(self, save_directory: str | os.PathLike[str], *args: Any,
                        **kwargs: Any) -> tuple[str, ...]:
        saved = super().save_pretrained(save_directory, *args, **kwargs)
        config_path = Path(save_directory) / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config.update(tokenizer_class=SAVED_CLASS, add_bos_token=self.add_bos_token,
                      add_eos_token=self.add_eos_token)
        config.pop("special_tokens_pattern", None)
        config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n",
                               encoding="utf-8")
        return saved
