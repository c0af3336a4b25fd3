"""The check at data load that a tokenizer trains a template exactly as it is prompted."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from llava_kit.data.dataset import tokenize_samples
from llava_kit.data.sample import Sample
from llava_kit.errors import DataError
from llava_kit.plugins.registry import get_registry
from llava_kit.templates.base import Message
from llava_kit.templates.fit import check_template_fits
from llava_kit.templates.vicuna import V1Template

NAMES = ["plain", "v0", "v1", "llava_v1", "llava_llama_2", "mistral_instruct", "chatml_direct"]


@pytest.fixture(scope="module")
def space_before_tokenizer() -> PreTrainedTokenizerFast:
    """Glues each space to the word before it ("ASSISTANT: "), so the token holding the
    space after the role starts in the prompt."""
    backend = Tokenizer(models.WordLevel({"<unk>": 0, "</s>": 1}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="</s>")


@pytest.mark.parametrize("name", NAMES)
def test_every_template_fits_the_parity_tokenizers(
    name: str, sp_llama_tokenizer: PreTrainedTokenizerBase,
    byte_bpe_tokenizer: PreTrainedTokenizerFast,
) -> None:
    template = get_registry().get("template", name).component()
    check_template_fits(template, sp_llama_tokenizer)
    check_template_fits(template, byte_bpe_tokenizer)


def test_a_tokenizer_splitting_elsewhere_than_the_prompt_fails_at_data_load(
    space_before_tokenizer: PreTrainedTokenizerFast,
) -> None:
    expected = "template 'v1' does not fit this tokenizer: .* starts in the prompt"
    with pytest.raises(DataError, match=expected):
        check_template_fits(V1Template(), space_before_tokenizer)
    sample = Sample("s0", [Message("user", "Hi?"), Message("assistant", "Hello.")])
    with pytest.raises(DataError, match=expected):
        tokenize_samples([sample], V1Template(), space_before_tokenizer)
