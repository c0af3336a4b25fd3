"""model.llm's tokenizer options: fast or slow (SentencePiece), legacy or not."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from transformers import AutoTokenizer

from llava_kit.datacheck.budget import load_tokenizer
from llava_kit.errors import ModelError
from llava_kit.llms.hf_causal_lm import HFCausalLM, HFCausalLMOptions
from llava_kit.llms.sentencepiece_tokenizer import SentencePieceLlamaTokenizer
from llava_kit.recipes.component_spec import LLMSpec


def pieces(tokenizer, text: str) -> list[str]:
    return tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])


def test_slow_loads_the_sentencepiece_model_in_the_legacy_mode_asked(
    sp_llama_dir: Path,
) -> None:
    def load(legacy: bool | None):
        options = HFCausalLMOptions(path=str(sp_llama_dir), use_fast_tokenizer=False,
                                    tokenizer_legacy=legacy)
        return HFCausalLM(options).load_tokenizer()

    legacy, modern, configured = load(True), load(False), load(None)
    assert isinstance(legacy, SentencePieceLlamaTokenizer) and legacy.legacy
    # Legacy mode starts a word after every special token, as the reference saw it.
    assert pieces(legacy, "Hi</s>USER")[-2:] == ["</s>", "▁USER"]
    assert pieces(modern, "Hi</s>USER")[-2:] == ["</s>", "USER"]
    assert configured.legacy  # the folder's tokenizer_config.json says legacy
    assert legacy.pad_token == "<unk>"  # Llama tokenizers have no pad token


def test_the_fast_tokenizer_splits_a_leading_space_differently(
    sp_llama_dir: Path, sp_llama_tokenizer
) -> None:
    # Why the paper recipes load the slow one: the text after an image ("<image> ASSISTANT:")
    # starts with a space, and the converted fast tokenizer drops a token there.
    fast = AutoTokenizer.from_pretrained(sp_llama_dir, legacy=True)
    text = " ASSISTANT: 42"
    slow_ids = sp_llama_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert [sp_llama_tokenizer.convert_ids_to_tokens(slow_ids[0])] == ["▁"]  # the dummy prefix
    assert fast(text, add_special_tokens=False)["input_ids"] == slow_ids[1:]


def test_the_slow_tokenizer_decodes_bytes_and_saves_as_llama(
    sp_llama_tokenizer, tmp_path: Path
) -> None:
    text = "Line one.\nÜber 東京, 42."
    ids = sp_llama_tokenizer(text)["input_ids"]
    assert sp_llama_tokenizer.decode(ids, skip_special_tokens=True) == text
    sp_llama_tokenizer.save_pretrained(tmp_path)
    reread = AutoTokenizer.from_pretrained(tmp_path)  # transformers' own Llama class
    assert type(reread).__name__ == "LlamaTokenizer"
    assert reread(text)["input_ids"] == ids


def test_slow_needs_a_sentencepiece_model(tiny_tokenizer_dir: Path) -> None:
    options = HFCausalLMOptions(path=str(tiny_tokenizer_dir), use_fast_tokenizer=False)
    with pytest.raises(ModelError, match="needs the SentencePiece model tokenizer.model in"):
        HFCausalLM(options).load_tokenizer()


def test_a_damaged_sentencepiece_model_is_one_error_naming_the_folder(
    sp_llama_dir: Path, tmp_path: Path
) -> None:
    config = (sp_llama_dir / "tokenizer_config.json").read_text()
    (tmp_path / "tokenizer_config.json").write_text(config)
    (tmp_path / "tokenizer.model").write_bytes(b"not a model")
    options = HFCausalLMOptions(path=str(tmp_path), use_fast_tokenizer=False)
    expected = f"llm option 'path': cannot load the tokenizer from '{tmp_path}'"
    with pytest.raises(ModelError, match=expected):
        HFCausalLM(options).load_tokenizer()


def test_the_data_check_loads_the_tokenizer_as_training_does(sp_llama_dir: Path) -> None:
    spec = LLMSpec.model_validate(
        {"name": "hf_causal_lm", "path": str(sp_llama_dir), "use_fast_tokenizer": False}
    )
    assert isinstance(load_tokenizer(SimpleNamespace(llm=spec)), SentencePieceLlamaTokenizer)
