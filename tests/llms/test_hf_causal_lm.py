"""The hf_causal_lm loader: saved folders, inline configs, tokenizers, padding, errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from llava_kit.errors import ModelError
from llava_kit.llms.base import LoadedLLM
from llava_kit.llms.hf_causal_lm import HFCausalLM, HFCausalLMOptions
from llava_kit.plugins.registry import get_registry
from llava_kit.tiny.llm import tiny_llama_config

SaveWordTokenizer = Callable[[dict[str, str]], Path]


def _load(**options: Any) -> LoadedLLM:
    return HFCausalLM(HFCausalLMOptions(**options)).load()


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    left, right = a.state_dict(), b.state_dict()
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def _inline(tokenizer_dir: Path, vocab_size: int, **options: Any) -> LoadedLLM:
    # The tiny tokenizer is trained with at most 2000 tokens, so 2000 rows always fit it.
    return _load(config=tiny_llama_config(vocab_size), tokenizer=str(tokenizer_dir), **options)


# --- loading by path ---------------------------------------------------------------


def test_a_saved_llama_loads_by_path_with_its_weights_and_tokenizer(
    tiny_llama_dir: Path, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    loaded = _load(path=str(tiny_llama_dir))
    model, tokenizer = loaded.model, loaded.tokenizer
    assert isinstance(model, LlamaForCausalLM)
    saved = load_file(tiny_llama_dir / "model.safetensors")
    state = model.state_dict()
    assert saved.keys() <= state.keys()
    assert all(torch.equal(state[key], tensor) for key, tensor in saved.items())
    assert model.dtype == torch.float32
    assert model.config._attn_implementation == "sdpa"

    assert tokenizer.get_vocab() == tiny_tokenizer.get_vocab()
    text = "A dog runs across a green field."
    assert tokenizer(text).input_ids == tiny_tokenizer(text).input_ids
    assert tokenizer.pad_token == "<pad>"  # its own pad token is kept
    assert model.config.pad_token_id == tokenizer.pad_token_id

    ids = torch.tensor([tokenizer(text).input_ids])
    assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tokenizer))


def test_dtype_and_attention_options_reach_the_model(tiny_llama_dir: Path) -> None:
    model = _load(path=str(tiny_llama_dir), dtype="bfloat16", attn_implementation="eager").model
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.config._attn_implementation == "eager"


def test_load_config_reads_the_config_without_weights(
    tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_weights(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("load_config must not load weights")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_weights)
    config = HFCausalLM(HFCausalLMOptions(path=str(tiny_llama_dir))).load_config()
    assert isinstance(config, LlamaConfig)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (64, 3, 4)
    assert config.intermediate_size == 128


# --- inline configs ----------------------------------------------------------------


def test_inline_config_builds_the_same_model_as_the_saved_one_for_the_same_seed(
    tiny_llama_dir: Path, tiny_tokenizer_dir: Path, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    by_path = _load(path=str(tiny_llama_dir)).model
    inline = _load(
        config=tiny_llama_config(len(tiny_tokenizer), tokenizer=tiny_tokenizer),
        tokenizer=str(tiny_tokenizer_dir),
        init_seed=0,
    ).model
    assert type(inline) is type(by_path)
    for field in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                  "num_key_value_heads", "intermediate_size", "max_position_embeddings"):
        assert getattr(inline.config, field) == getattr(by_path.config, field), field
    # save_tiny_llama(seed=0) and an inline config with init_seed=0 draw the same weights.
    assert _same_weights(inline, by_path)
    assert not inline.training and not by_path.training


def test_inline_config_is_deterministic_per_seed_and_leaves_global_rng_alone(
    tiny_tokenizer_dir: Path,
) -> None:
    before = torch.get_rng_state()
    first = _inline(tiny_tokenizer_dir, 2000, init_seed=5).model
    assert torch.equal(torch.get_rng_state(), before)
    again = _inline(tiny_tokenizer_dir, 2000, init_seed=5).model
    other = _inline(tiny_tokenizer_dir, 2000, init_seed=6).model
    assert _same_weights(first, again)
    assert not _same_weights(first, other)


def test_inline_load_config_builds_the_config_from_the_dict(tiny_tokenizer_dir: Path) -> None:
    options = HFCausalLMOptions(
        config=tiny_llama_config(500, hidden_size=32, num_layers=2),
        tokenizer=str(tiny_tokenizer_dir),
    )
    config = HFCausalLM(options).load_config()
    assert isinstance(config, LlamaConfig)
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (500, 32, 2)


# --- other model families ------------------------------------------------------------


def test_a_saved_qwen2_loads_by_path(
    tmp_path: Path, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    config = Qwen2Config(
        vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
    )
    Qwen2ForCausalLM(config).save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    loaded = _load(path=str(tmp_path))
    assert isinstance(loaded.model, Qwen2ForCausalLM)
    assert loaded.model.config.num_key_value_heads == 2
    assert loaded.tokenizer.get_vocab() == tiny_tokenizer.get_vocab()


def test_a_gpt2_inline_config_loads(tiny_tokenizer_dir: Path) -> None:
    config = {"model_type": "gpt2", "vocab_size": 2000, "n_embd": 32, "n_layer": 2, "n_head": 4,
              "n_positions": 128}
    model = _load(config=config, tokenizer=str(tiny_tokenizer_dir)).model
    assert isinstance(model, GPT2LMHeadModel)
    assert (model.config.n_embd, model.config.n_layer) == (32, 2)


# --- options passed through ------------------------------------------------------------


Calls = list[tuple[str, dict[str, Any]]]


def _spy(monkeypatch: pytest.MonkeyPatch, owner: type, name: str, calls: Calls) -> None:
    original = getattr(owner, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append((f"{owner.__name__}.{name}", kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)


@pytest.fixture
def loader_calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    calls: Calls = []
    _spy(monkeypatch, AutoModelForCausalLM, "from_pretrained", calls)
    _spy(monkeypatch, AutoModelForCausalLM, "from_config", calls)
    _spy(monkeypatch, AutoTokenizer, "from_pretrained", calls)
    _spy(monkeypatch, AutoConfig, "from_pretrained", calls)
    return calls


@pytest.mark.parametrize("trust", [None, True])
def test_trust_remote_code_is_off_by_default_and_passed_everywhere(
    tiny_llama_dir: Path, tiny_tokenizer_dir: Path, loader_calls: Calls,
    trust: bool | None,
) -> None:
    extra = {} if trust is None else {"trust_remote_code": trust}
    expected = bool(trust)
    llm = HFCausalLM(HFCausalLMOptions(path=str(tiny_llama_dir), **extra))
    llm.load()
    llm.load_config()
    _inline(tiny_tokenizer_dir, 2000, **extra)
    # transformers calls AutoConfig itself too; those calls must carry the flag as well.
    assert {name for name, _ in loader_calls} == {
        "AutoModelForCausalLM.from_pretrained",
        "AutoModelForCausalLM.from_config",
        "AutoTokenizer.from_pretrained",
        "AutoConfig.from_pretrained",
    }
    assert all(kwargs.get("trust_remote_code") is expected for _, kwargs in loader_calls)


# --- pad token -------------------------------------------------------------------


def test_a_tokenizer_without_pad_pads_with_unk(word_tokenizer_dir: SaveWordTokenizer) -> None:
    folder = word_tokenizer_dir({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})
    loaded = _inline(folder, 16)
    assert loaded.tokenizer.pad_token == "<unk>"
    assert loaded.tokenizer.pad_token_id == 2
    assert loaded.model.config.pad_token_id == 2
    assert loaded.model.generation_config.pad_token_id == 2


def test_the_pad_token_option_is_used_when_the_tokenizer_has_none(
    word_tokenizer_dir: SaveWordTokenizer,
) -> None:
    folder = word_tokenizer_dir({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})
    loaded = _inline(folder, 16, pad_token="</s>")
    assert loaded.tokenizer.pad_token == "</s>"
    assert loaded.model.config.pad_token_id == 1


def test_without_pad_or_unk_eos_pads(word_tokenizer_dir: SaveWordTokenizer) -> None:
    folder = word_tokenizer_dir({"bos_token": "<s>", "eos_token": "</s>"})
    assert _inline(folder, 16).tokenizer.pad_token == "</s>"


def test_a_tokenizers_own_pad_token_wins_over_the_option(
    word_tokenizer_dir: SaveWordTokenizer,
) -> None:
    folder = word_tokenizer_dir({"unk_token": "<unk>", "eos_token": "</s>", "pad_token": "<pad>"})
    assert _inline(folder, 16, pad_token="</s>").tokenizer.pad_token == "<pad>"


def test_a_pad_token_option_outside_the_vocabulary_is_an_error(
    word_tokenizer_dir: SaveWordTokenizer,
) -> None:
    folder = word_tokenizer_dir({"eos_token": "</s>", "unk_token": "<unk>"})
    with pytest.raises(ModelError, match=r"llm option 'pad_token': '\[PAD\]' is not in"):
        _inline(folder, 16, pad_token="[PAD]")


def test_a_tokenizer_with_nothing_to_pad_with_is_an_error(
    word_tokenizer_dir: SaveWordTokenizer,
) -> None:
    folder = word_tokenizer_dir({"bos_token": "<s>"})
    with pytest.raises(ModelError, match="no pad, unk or eos token") as caught:
        _inline(folder, 16)
    assert "pad_token" in str(caught.value)


# --- option validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "set exactly one of 'path'"),
        ({"path": "x", "config": {"model_type": "llama"}, "tokenizer": "t"}, "set exactly one of"),
        ({"config": {"model_type": "llama"}}, "an inline 'config' needs 'tokenizer'"),
        ({"config": {"hidden_size": 8}, "tokenizer": "t"}, "'config' needs a 'model_type'"),
        ({"config": {"model_type": "lama"}, "tokenizer": "t"},
         "'config.model_type' 'lama' is not a causal LM known to transformers; valid ones include"),
        ({"config": {"model_type": "clip"}, "tokenizer": "t"}, "'clip' is not a causal LM"),
        ({"path": "x", "dtype": "float64"}, "dtype"),
        ({"path": "x", "attn_implementation": "flash"}, "attn_implementation"),
        ({"path": "x", "revision": "main"}, "revision"),
    ],
)
def test_invalid_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        HFCausalLMOptions(**options)


def test_an_unknown_model_type_lists_close_and_common_valid_ones() -> None:
    with pytest.raises(ValidationError) as caught:
        HFCausalLMOptions(config={"model_type": "lama"}, tokenizer="t")
    listed = str(caught.value).split("valid ones include ", 1)[1]
    assert listed.startswith("llama")
    for name in ("mistral", "qwen2", "gpt2"):
        assert name in listed


def test_an_inconsistent_inline_config_is_a_model_error(tiny_tokenizer_dir: Path) -> None:
    config = tiny_llama_config(2000, hidden_size=64, num_heads=3)
    with pytest.raises(ModelError, match="llm option 'config': transformers rejects it") as caught:
        _load(config=config, tokenizer=str(tiny_tokenizer_dir))
    assert "not a multiple of the number of attention heads" in str(caught.value)


# --- loading errors ----------------------------------------------------------------------


@pytest.mark.parametrize("relative", ["./absent", "models/llm/absent"])
def test_a_missing_local_folder_names_the_option_and_path(
    relative: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for path in (relative, str(tmp_path / "absent")):
        with pytest.raises(ModelError, match="local folder not found") as caught:
            _load(path=path)
        assert "llm option 'path'" in str(caught.value)
        assert str(Path(path)) in str(caught.value)


def test_a_missing_tokenizer_folder_names_the_tokenizer_option(
    tiny_llama_dir: Path, tmp_path: Path
) -> None:
    expected = "llm option 'tokenizer': local folder not found"
    with pytest.raises(ModelError, match=expected) as caught:
        _load(path=str(tiny_llama_dir), tokenizer=str(tmp_path / "no-tokenizer"))
    assert str(tmp_path / "no-tokenizer") in str(caught.value)


def test_a_file_instead_of_a_folder_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "model.bin"
    file.write_bytes(b"")
    with pytest.raises(ModelError, match="is a file, not a folder"):
        _load(path=str(file))


def test_a_folder_without_a_model_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as caught:
        _load(path=str(tmp_path))
    assert str(tmp_path) in str(caught.value)


def test_a_hub_name_that_is_not_cached_is_a_model_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelError, match="llm option 'path'") as caught:
        HFCausalLM(HFCausalLMOptions(path="llava-kit-tests/no-such-model")).load_config()
    assert "'llava-kit-tests/no-such-model'" in str(caught.value)


def test_a_tokenizer_bigger_than_the_embedding_table_is_refused(
    tiny_tokenizer_dir: Path, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    expected = f"{len(tiny_tokenizer)} tokens but the model's embedding table has 100 rows"
    with pytest.raises(ModelError, match=expected):
        _inline(tiny_tokenizer_dir, 100)


@pytest.mark.skipif(
    importlib.util.find_spec("flash_attn") is not None and torch.cuda.is_available(),
    reason="flash-attn is usable here",
)
def test_unavailable_flash_attention_is_a_model_error_pointing_at_sdpa(
    tiny_llama_dir: Path,
) -> None:
    with pytest.raises(ModelError) as caught:
        _load(path=str(tiny_llama_dir), attn_implementation="flash_attention_2")
    assert "sdpa" in str(caught.value)


def test_registered_as_hf_causal_lm() -> None:
    assert get_registry().get("llm", "hf_causal_lm").component is HFCausalLM


def test_inline_config_without_vocab_takes_it_from_the_tokenizer(tiny_tokenizer_dir) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    loaded = HFCausalLM(HFCausalLM.Options(
        config={"model_type": "llama", "hidden_size": 32, "num_hidden_layers": 1,
                "num_attention_heads": 4, "intermediate_size": 64},
        tokenizer=str(tiny_tokenizer_dir),
    )).load()
    assert loaded.model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert loaded.model.config.eos_token_id == tokenizer.eos_token_id
    assert loaded.model.config.bos_token_id == tokenizer.bos_token_id
