"""Export to transformers' LLaVA format (``LlavaForConditionalGeneration`` + ``LlavaProcessor``).

Supported: an ``hf_clip`` tower, a ``linear`` or ``mlp{N}x_gelu`` (N <= 2) connector and a
Llama-family ``hf_causal_lm``. HF's projector is always Linear-act-Linear, so a single
Linear is exported with the identity activation ("linear") and an identity second layer,
which computes exactly the same map. HF marks image positions with a real token id, so
the tokenizer gains an ``<image>`` token and the embeddings one row; that row is the mean
of the others, so its logit (the mean of the logits) never wins greedy decoding. The
processor's chat template is written only when it reproduces training's token ids.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from tokenizers import AddedToken
from transformers import (
    LlavaConfig, LlavaForConditionalGeneration, LlavaImageProcessor, LlavaProcessor,
    PreTrainedTokenizerBase,
)

from llava_kit.connectors.mlp import LinearConnector, MLPConnector
from llava_kit.constants import IMAGE_PLACEHOLDER
from llava_kit.encoders.hf_clip import HFCLIPEncoder
from llava_kit.errors import ModelError
from llava_kit.export.chat_template import matching_chat_template
from llava_kit.model.build import build_template
from llava_kit.tensor_files import writing

if TYPE_CHECKING:
    from llava_kit.model.vlm import LlavaModel
    from llava_kit.recipes.schema import ModelSpec, Recipe

LLAMA_FAMILY = ("llama",)
HF_STRATEGY = {"patch": "default", "cls_patch": "full"}
# The processor copies these image-processor settings from the encoder's own processor.
_PROCESSOR_FIELDS = (
    "do_resize", "size", "resample", "do_center_crop", "crop_size", "do_rescale",
    "rescale_factor", "do_normalize", "image_mean", "image_std", "do_convert_rgb",
)


def hf_llava_blockers(model: "LlavaModel", spec: "ModelSpec") -> list[str]:
    """Why this model (built from ``spec``) cannot be written in HF's LLaVA format; empty if it can."""
    reasons = []
    if not isinstance(model.encoder, HFCLIPEncoder):
        reasons.append(f"encoder {spec.encoder.name!r}: HF LLaVA's vision tower is a "
                       "transformers CLIP model (hf_clip)")
    connector = model.connector
    if isinstance(connector, MLPConnector) and connector.options.depth > 2:
        reasons.append(f"connector {spec.connector.name!r}: HF's projector has two Linear "
                       "layers (linear, mlp1x_gelu or mlp2x_gelu)")
    elif not isinstance(connector, (LinearConnector, MLPConnector)):
        reasons.append(f"connector {spec.connector.name!r}: HF's projector is linear or "
                       "mlp2x_gelu")
    model_type = getattr(getattr(model.llm, "config", None), "model_type", None)
    if model_type not in LLAMA_FAMILY:
        reasons.append(f"LLM model_type {model_type!r}: exported only for {', '.join(LLAMA_FAMILY)}")
    return reasons


def export_hf_llava(model: "LlavaModel", recipe: "Recipe", out: Path) -> list[str]:
    """Write ``out`` so that LlavaForConditionalGeneration / AutoProcessor load it as is.

    ``model`` must have no LoRA adapters left (merge them first) and pass hf_llava_blockers.
    Returns notes for the user (what could not be carried over).
    """
    reasons = hf_llava_blockers(model, recipe.model)
    if reasons:
        raise ModelError(
            "this run cannot be exported to HF's LLaVA format: " + "; ".join(reasons),
            hint="use `--format llava-kit` (loadable with llava_kit.load(DIR))",
        )
    encoder: HFCLIPEncoder = model.encoder  # type: ignore[assignment]
    tokenizer, image_id = tokenizer_with_image_token(model.tokenizer)
    hf = _build_hf_model(model, image_id, len(tokenizer))
    out.mkdir(parents=True, exist_ok=True)
    with writing(out):
        hf.save_pretrained(out)
    spec = recipe.answer_template
    chat_template = matching_chat_template(
        build_template(spec, model.tokenizer), recipe.model.image_position, model.tokenizer, tokenizer, image_id
    )
    notes = []
    if chat_template is None:
        notes.append(
            f"no chat_template written: no Jinja form of template {spec.name!r} gives the token "
            "ids training used with this tokenizer; build prompts with llava-kit's template"
        )
    processor = LlavaProcessor(
        image_processor=_image_processor(encoder),
        tokenizer=tokenizer,
        patch_size=encoder.tower.config.patch_size,
        vision_feature_select_strategy=HF_STRATEGY[encoder.options.select_feature],
        chat_template=chat_template,
        image_token=IMAGE_PLACEHOLDER,
        num_additional_image_tokens=1,  # CLIP's CLS token; "default" drops it again
    )
    processor.save_pretrained(out)
    # transformers 5 nests the image processor in processor_config.json; serving engines
    # built on transformers 4 read it from a file of its own.
    processor.image_processor.save_pretrained(out)
    return notes


def tokenizer_with_image_token(tokenizer: PreTrainedTokenizerBase) -> tuple[PreTrainedTokenizerBase, int]:
    """A copy of ``tokenizer`` where ``<image>`` is one special token, and that token's id."""
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.add_tokens([AddedToken(IMAGE_PLACEHOLDER, special=True, normalized=False)],
                         special_tokens=True)
    return tokenizer, tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER)


def _build_hf_model(model: "LlavaModel", image_id: int, vocab: int) -> LlavaForConditionalGeneration:
    encoder: HFCLIPEncoder = model.encoder  # type: ignore[assignment]
    llm = model.llm
    rows = max(vocab, llm.get_input_embeddings().num_embeddings)
    text_config = copy.deepcopy(llm.config)
    text_config.vocab_size = rows
    two_layers = isinstance(model.connector, MLPConnector) and model.connector.options.depth == 2
    config = LlavaConfig(
        vision_config=encoder.tower.config.to_dict(),
        text_config=text_config.to_dict(),
        image_token_index=image_id,
        image_seq_length=model.num_visual_tokens,
        projector_hidden_act="gelu" if two_layers else "linear",
        vision_feature_layer=encoder.options.select_layer,
        vision_feature_select_strategy=HF_STRATEGY[encoder.options.select_feature],
        multimodal_projector_bias=True,
        tie_word_embeddings=bool(getattr(llm.config, "tie_word_embeddings", False)),
    )
    dtype = llm.get_input_embeddings().weight.dtype
    hf = LlavaForConditionalGeneration(config).to(dtype).eval()
    state = {f"model.vision_tower.{k}": v for k, v in encoder.tower.state_dict().items()}
    state |= _projector_state(model, dtype)
    state |= {f"model.language_model.{k}": v for k, v in llm.model.state_dict().items()}
    state["lm_head.weight"] = llm.lm_head.weight
    for key in ("model.language_model.embed_tokens.weight", "lm_head.weight"):
        state[key] = _with_mean_rows(state[key], rows)
    hf.load_state_dict(state, strict=True)
    generation = hf.generation_config
    tokenizer = model.tokenizer
    generation.bos_token_id, generation.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    generation.pad_token_id = tokenizer.pad_token_id
    return hf


def _projector_state(model: "LlavaModel", dtype: torch.dtype) -> dict[str, torch.Tensor]:
    connector = model.connector
    proj = connector.proj
    linears = [proj] if isinstance(proj, nn.Linear) else [m for m in proj if isinstance(m, nn.Linear)]
    first = linears[0]
    if len(linears) == 2:
        second_weight, second_bias = linears[1].weight, linears[1].bias
    else:  # identity second layer: Linear-identity-Linear computes the single W exactly
        second_weight = torch.eye(connector.llm_dim, dtype=dtype)
        second_bias = torch.zeros(connector.llm_dim, dtype=dtype)
    prefix = "model.multi_modal_projector."
    return {
        prefix + "linear_1.weight": first.weight, prefix + "linear_1.bias": first.bias,
        prefix + "linear_2.weight": second_weight, prefix + "linear_2.bias": second_bias,
    }


def _with_mean_rows(weight: torch.Tensor, rows: int) -> torch.Tensor:
    extra = rows - weight.shape[0]
    if extra <= 0:
        return weight
    mean = weight.detach().mean(dim=0, keepdim=True)
    return torch.cat([weight.detach(), mean.expand(extra, -1)], dim=0)


def _image_processor(encoder: HFCLIPEncoder) -> LlavaImageProcessor:
    """The encoder's CLIP processor settings, padding to a mean-colour square when the run did."""
    source = encoder.processor
    settings = {field: getattr(source, field) for field in _PROCESSOR_FIELDS if hasattr(source, field)}
    return LlavaImageProcessor(**settings, do_pad=encoder.options.image_aspect_ratio == "pad")
