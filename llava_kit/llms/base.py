"""The language-model contract: a loader that returns a causal LM and its tokenizer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from transformers import AutoTokenizer, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from llava_kit.components import Options
from llava_kit.errors import ModelError


@dataclass
class LoadedLLM:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase


class LanguageModel(ABC):
    """Loads a causal language model and its tokenizer from the recipe's options."""

    Options: ClassVar[type[Options]]

    def __init__(self, options: Options) -> None:
        self.options = options

    @abstractmethod
    def load(self) -> LoadedLLM:
        """Weights and tokenizer, ready for training or generation."""

    @abstractmethod
    def load_config(self) -> PretrainedConfig:
        """The model config alone (no weights), for planning and meta-device builds."""

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        """The tokenizer alone, exactly as ``load`` returns it (the data check tokenizes
        with it). By default: AutoTokenizer on the ``tokenizer`` option, else ``path``."""
        source = getattr(self.options, "tokenizer", None) or getattr(self.options, "path", None)
        if source is None:
            raise ModelError(
                f"{type(self).__name__} names no tokenizer or path the data check can read",
                hint="give the LLM a 'tokenizer' or 'path' option, or override load_tokenizer",
            )
        trust = bool(getattr(self.options, "trust_remote_code", False))
        try:
            return AutoTokenizer.from_pretrained(source, trust_remote_code=trust)
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"model.llm: cannot load the tokenizer from {source!r}: "
                f"{str(exc).splitlines()[0]}",
                hint="point the LLM's 'tokenizer' (or 'path') option at a tokenizer folder",
            ) from exc
