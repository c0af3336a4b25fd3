"""Loading a tokenizer fast or slow, legacy or not, as the reference LLaVA's runs did.

The reference loads LLaMA/Vicuna tokenizers with ``use_fast=False``: the SentencePiece
model itself, in the legacy mode its tokenizer config asks for (legacy when it says
nothing). transformers 5 ignores ``use_fast``, so the slow path here builds the
SentencePiece tokenizer explicitly.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from llava_kit.errors import ModelError

SENTENCEPIECE_MODEL = "tokenizer.model"


def load_tokenizer_from(
    source: str, *, use_fast: bool, legacy: bool | None, trust_remote_code: bool
) -> PreTrainedTokenizerBase:
    """The tokenizer in ``source`` (folder or hub name); OSError/ValueError for an unreadable
    one, as transformers raises them. ``legacy`` None: what the tokenizer config says."""
    kwargs: dict[str, Any] = {} if legacy is None else {"legacy": legacy}
    if use_fast:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, **kwargs)
    if importlib.util.find_spec("sentencepiece") is None:
        raise ModelError(
            "llm option 'use_fast_tokenizer: false' needs the sentencepiece package",
            hint='pip install "llava-kit[sentencepiece]", or set use_fast_tokenizer: true',
        )
    folder = Path(source).expanduser()
    if folder.is_dir() and not (folder / SENTENCEPIECE_MODEL).is_file():
        raise ModelError(
            f"llm option 'use_fast_tokenizer: false' needs the SentencePiece model "
            f"{SENTENCEPIECE_MODEL} in {folder}, which has none",
            hint="slow tokenizers exist for SentencePiece models (LLaMA, Vicuna, Mistral); "
            "for others set use_fast_tokenizer: true",
        )
    from llava_kit.llms.sentencepiece_tokenizer import SentencePieceLlamaTokenizer

    try:
        return SentencePieceLlamaTokenizer.from_pretrained(source, **kwargs)
    except RuntimeError as exc:  # SentencePiece's own error for a file it cannot parse
        raise ValueError(str(exc)) from exc
