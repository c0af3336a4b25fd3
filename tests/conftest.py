"""Shared pytest fixtures."""

from __future__ import annotations

import os

# Tests never reach a model hub; set before transformers / huggingface_hub are imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Token stores of test data go to this session's own folder (children inherit it), not
# to the user's cache.
if "LLAVA_KIT_CACHE" not in os.environ:
    import atexit  # noqa: E402
    import shutil  # noqa: E402
    import tempfile  # noqa: E402

    os.environ["LLAVA_KIT_CACHE"] = tempfile.mkdtemp(prefix="llava-kit-tests-")
    atexit.register(shutil.rmtree, os.environ["LLAVA_KIT_CACHE"], ignore_errors=True)

import io  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from llava_kit.llms.tokenizer_loading import load_tokenizer_from
from llava_kit.tiny.tokenizer import default_corpus, train_tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the tiny Llama-like tokenizer (loadable with AutoTokenizer)."""
    out_dir = tmp_path_factory.mktemp("tiny_tokenizer")
    train_tokenizer(default_corpus(), out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir: Path) -> PreTrainedTokenizerFast:
    """The tiny Llama-like tokenizer: BOS prepended, '</s>' is eos, trained on the templates."""
    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


# Text for the two parity tokenizers below: every template string, digits, quotes, spaces
# and non-ASCII letters, so that both split the templates into real words and subwords.
_PARITY_LINES = [
    "[INST] <<SYS>>\nYou are a helpful language and vision assistant.\n<</SYS>>\n\n[/INST]",
    "You are able to understand the visual content that the user provides, and assist the "
    "user with a variety of tasks using natural language.",
    "<|im_start|>system\nAnswer the questions.<|im_end|><|im_start|>user\n<|im_end|>"
    "<|im_start|>assistant\n",
    "There are 3 dogs, 42 apples and 7 pears: 1 2 3 4 5 6 7 8 9 0.",
    '"Yes", it is. ... no! Two, maybe. (A) or (B)?',
    "Über dem Tisch: Café, naïve, 東京, Tōkyō.",
]


def parity_corpus() -> list[str]:
    return default_corpus() + _PARITY_LINES


@pytest.fixture(scope="session")
def sp_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LLaMA-style SentencePiece tokenizer folder (tokenizer.model, legacy config): BPE,
    byte fallback, digits split, no normalization, a dummy prefix; trained in milliseconds."""
    import sentencepiece

    lines = [line for text in parity_corpus() for line in text.split("\n") if line.strip()]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type="bpe", vocab_size=700,
        byte_fallback=True, split_digits=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True, allow_whitespace_only_pieces=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, character_coverage=1.0,
        user_defined_symbols=["<|im_start|>", "<|im_end|>"], hard_vocab_limit=False,
        minloglevel=2, num_threads=1,
    )
    out_dir = tmp_path_factory.mktemp("sp_llama")
    (out_dir / "tokenizer.model").write_bytes(model.getvalue())
    config = {
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False, "legacy": True,
        "clean_up_tokenization_spaces": False,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config))
    return out_dir


@pytest.fixture(scope="session")
def sp_llama_tokenizer(sp_llama_dir: Path) -> PreTrainedTokenizerBase:
    """That tokenizer loaded slow and legacy, as the paper recipes load Vicuna's."""
    return load_tokenizer_from(str(sp_llama_dir), use_fast=False, legacy=True,
                               trust_remote_code=False)


@pytest.fixture(scope="session")
def byte_bpe_tokenizer() -> PreTrainedTokenizerFast:
    """A GPT-2/Qwen-style byte-level BPE tokenizer: no BOS added, the special tokens of the
    LLaMA and ChatML templates, '</s>' as eos."""
    special = ["<|endoftext|>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=900, special_tokens=special, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(parity_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<|endoftext|>",
        additional_special_tokens=special[3:], clean_up_tokenization_spaces=False,
    )
