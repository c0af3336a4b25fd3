"""Any Hugging Face causal LM, from a saved folder / hub name or from an inline config."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import model_validator
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from llava_kit.components import Options
from llava_kit.errors import ModelError
from llava_kit.llms.base import LanguageModel, LoadedLLM
from llava_kit.llms.tokenizer_loading import load_tokenizer_from
from llava_kit.pretrained import UNREADABLE_WEIGHTS, weights_error

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
# Shown when a model_type is unknown, ahead of the close matches.
COMMON_MODEL_TYPES = ("llama", "mistral", "qwen2", "gemma", "phi3", "gpt2", "opt")


class HFCausalLMOptions(Options):
    path: str | None = None
    config: dict[str, Any] | None = None
    init_seed: int = 0
    tokenizer: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    trust_remote_code: bool = False
    # False: the SentencePiece model itself (tokenizer.model), as the reference LLaVA loads
    # LLaMA/Vicuna tokenizers; True: the tokenizers-library version transformers builds.
    use_fast_tokenizer: bool = True
    # The LLaMA tokenizer's legacy mode (a word boundary after every special token);
    # None keeps what the tokenizer config says.
    tokenizer_legacy: bool | None = None
    pad_token: str | None = None

    @model_validator(mode="after")
    def _check_source(self) -> HFCausalLMOptions:
        if (self.path is None) == (self.config is None):
            raise ValueError(
                "set exactly one of 'path' (a saved model folder or hub name) and "
                "'config' (an inline config for a randomly initialised model)"
            )
        if self.config is not None:
            if self.tokenizer is None:
                raise ValueError("an inline 'config' needs 'tokenizer' (a tokenizer folder)")
            _check_model_type(self.config.get("model_type"))
        return self


def _check_model_type(model_type: Any) -> None:
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return
    known = list(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    close = difflib.get_close_matches(str(model_type), known, n=3, cutoff=0.6)
    examples = list(dict.fromkeys([*close, *COMMON_MODEL_TYPES]))
    if model_type is None:
        problem = "'config' needs a 'model_type'"
    else:
        problem = f"'config.model_type' {model_type!r} is not a causal LM known to transformers"
    raise ValueError(
        f"{problem}; valid ones include {', '.join(examples)} ({len(known)} in all, "
        "see transformers' MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)"
    )


class HFCausalLM(LanguageModel):
    """A Hugging Face causal LM (AutoModelForCausalLM) and its tokenizer.

    When the tokenizer has no pad token (Llama and Vicuna tokenizers ship without one),
    padding uses the ``pad_token`` option, else the unk token, else eos; a tokenizer's own
    pad token is always kept. Unk comes before eos because code that finds padding by token
    id would otherwise also hide the real end-of-answer tokens, and the model would not
    learn to stop. The model comes back in eval mode, whichever source it was built from.
    """

    Options = HFCausalLMOptions

    @property
    def _options(self) -> HFCausalLMOptions:
        return self.options  # type: ignore[return-value]

    def load_config(self) -> PretrainedConfig:
        options = self._options
        if options.config is not None:
            kwargs = dict(options.config)
            try:
                return AutoConfig.for_model(kwargs.pop("model_type"), **kwargs)
            # Config classes reject values with ValueError, TypeError or huggingface_hub's
            # own validation errors, depending on the version; all are the user's input.
            except Exception as exc:
                detail = " ".join(line.strip() for line in str(exc).splitlines())
                raise ModelError(
                    f"llm option 'config': transformers rejects it: {detail}",
                    hint="fix the named field; the keys are those of the model's config class",
                ) from exc
        source = _local_or_hub(options.path, "path")  # type: ignore[arg-type]
        try:
            return AutoConfig.from_pretrained(source, trust_remote_code=options.trust_remote_code)
        except (OSError, ValueError) as exc:
            raise _load_error("path", source, "model config", exc) from exc

    def load(self) -> LoadedLLM:
        # The tokenizer first: it is quick, so a wrong folder fails before a big model loads.
        tokenizer = self.load_tokenizer()
        model = self._load_model(tokenizer)
        rows = model.get_input_embeddings().num_embeddings
        if len(tokenizer) > rows:
            raise ModelError(
                f"llm: the tokenizer has {len(tokenizer)} tokens but the model's embedding "
                f"table has {rows} rows, so some token ids have no embedding",
                hint="point 'tokenizer' at the tokenizer saved with this model",
            )
        # Generation reads the pad id from the config; keep it in step with the tokenizer.
        model.config.pad_token_id = tokenizer.pad_token_id
        if model.generation_config is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
        return LoadedLLM(model=model, tokenizer=tokenizer)

    def _load_model(self, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
        options = self._options
        kwargs: dict[str, Any] = {
            "dtype": DTYPES[options.dtype],
            "attn_implementation": options.attn_implementation,
            "trust_remote_code": options.trust_remote_code,
        }
        if options.config is not None:
            config = self.load_config()
            _fill_from_tokenizer(config, options.config, tokenizer)
            # A private RNG stream: the same seed gives the same weights, and the caller's
            # global random state is left as it was.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(options.init_seed)
                try:
                    model = AutoModelForCausalLM.from_config(config, **kwargs)
                except (ImportError, ValueError) as exc:
                    raise _build_error(options, "inline config", exc) from exc
            # from_pretrained returns eval mode; both sources should behave the same.
            return model.eval()
        source = _local_or_hub(options.path, "path")  # type: ignore[arg-type]
        try:
            return AutoModelForCausalLM.from_pretrained(source, **kwargs)
        except OSError as exc:
            raise _load_error("path", source, "model", exc) from exc
        except UNREADABLE_WEIGHTS as exc:
            raise weights_error("llm option 'path'", source, exc) from exc
        # RuntimeError: weights of other shapes (another architecture's checkpoint).
        except (ImportError, ValueError, RuntimeError) as exc:
            raise _build_error(options, source, exc) from exc

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        options = self._options
        option = "tokenizer" if options.tokenizer is not None else "path"
        source = _local_or_hub(options.tokenizer or options.path, option)  # type: ignore[arg-type]
        try:
            tokenizer = load_tokenizer_from(
                source,
                use_fast=options.use_fast_tokenizer,
                legacy=options.tokenizer_legacy,
                trust_remote_code=options.trust_remote_code,
            )
        except (OSError, ValueError) as exc:
            raise _load_error(option, source, "tokenizer", exc) from exc
        _set_pad_token(tokenizer, options.pad_token)
        return tokenizer


def _fill_from_tokenizer(
    config: PretrainedConfig, given: dict[str, Any], tokenizer: PreTrainedTokenizerBase
) -> None:
    """An inline config that leaves out the vocabulary takes it from its tokenizer.

    A generated tokenizer's size is only known once it exists, so demo and test recipes
    can name the architecture and let the vocabulary and special ids follow.
    """
    if "vocab_size" not in given:
        config.vocab_size = len(tokenizer)
    for field in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if field not in given:
            setattr(config, field, getattr(tokenizer, field))


def _set_pad_token(tokenizer: PreTrainedTokenizerBase, preferred: str | None) -> None:
    if tokenizer.pad_token is not None:
        return
    if preferred is not None:
        if preferred not in tokenizer.get_vocab():
            raise ModelError(
                f"llm option 'pad_token': {preferred!r} is not in the tokenizer's vocabulary",
                hint="name an existing token, or leave it unset to pad with unk (else eos)",
            )
        tokenizer.pad_token = preferred
    elif tokenizer.unk_token is not None:
        tokenizer.pad_token = tokenizer.unk_token
    elif tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    else:
        raise ModelError(
            "llm: the tokenizer has no pad, unk or eos token to pad batches with",
            hint="set the llm option 'pad_token' to a token of its vocabulary",
        )


def _local_or_hub(value: str, option: str) -> str:
    """``value`` with ``~`` expanded; ModelError if it is clearly a local path that is missing.

    A hub name is ``name`` or ``org/name``; anything absolute, relative with ``.``, or with
    more than one ``/`` can only be a folder on disk.
    """
    path = Path(value).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(
                f"llm option {option!r}: {path} is a file, not a folder",
                hint="give the folder written by save_pretrained",
            )
        return str(path)
    if value.startswith(("/", ".", "~")) or value.count("/") > 1 or "\\" in value:
        raise ModelError(
            f"llm option {option!r}: local folder not found: {path}",
            hint="check the path; relative paths are taken from the working directory",
        )
    return value


def _load_error(option: str, source: str, what: str, exc: Exception) -> ModelError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ModelError(
        f"llm option {option!r}: cannot load the {what} from {source!r}: {detail}",
        hint="point it at a folder written by save_pretrained, or at a hub model already in "
        "the local cache (downloads are off when HF_HUB_OFFLINE=1)",
    )


def _build_error(options: HFCausalLMOptions, source: str, exc: Exception) -> ModelError:
    detail = str(exc).strip().splitlines()[0]
    hint = None
    if options.attn_implementation == "flash_attention_2":
        hint = "flash_attention_2 needs the flash-attn package and a supported GPU; use 'sdpa'"
    return ModelError(f"llm: cannot build the model from {source}: {detail}", hint=hint)
