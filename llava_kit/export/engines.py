"""What vLLM and SGLang need from an ``hf-llava`` export, checked on the written folder.

Both engines load transformers' Llava layout: ``config.json`` (``model_type: llava``,
``image_token_index``, ``vision_feature_layer``, ``vision_feature_select_strategy``
``default`` or ``full``, ``projector_hidden_act``), weights with the projector as
``multi_modal_projector.linear_1`` / ``linear_2``, a tokenizer holding ``<image>`` as one
token, the image processor's settings and the chat template their OpenAI-compatible
servers render prompts with. vLLM builds the projector's activation from a table of its
own, which has no ``linear`` (the identity a one-layer connector exports with).
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open

from llava_kit.constants import IMAGE_PLACEHOLDER

# The activations vLLM's get_act_fn knows.
VLLM_ACTIVATIONS = ("gelu", "gelu_fast", "gelu_new", "gelu_pytorch_tanh", "relu", "relu2",
                    "silu", "quick_gelu", "tanh", "sigmoid")
FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
         "tokenizer_config.json", "processor_config.json", "preprocessor_config.json")
PROJECTOR = ("multi_modal_projector.linear_1.weight", "multi_modal_projector.linear_2.weight")


def serving_engine_notes(folder: Path) -> list[str]:
    """Why vLLM or SGLang could not serve the export in ``folder`` as is; empty if both can."""
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        return [f"vLLM and SGLang need {', '.join(missing)}, which the export lacks"]
    notes = []
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "llava" or "LlavaForConditionalGeneration" not in config.get("architectures", []):
        notes.append("config.json does not describe a LlavaForConditionalGeneration")
    if config.get("vision_feature_select_strategy") not in ("default", "full"):
        notes.append("vision_feature_select_strategy must be 'default' or 'full'")
    if not isinstance(config.get("vision_feature_layer"), int):
        notes.append("vision_feature_layer must be one layer index")
    activation = config.get("projector_hidden_act")
    if activation not in VLLM_ACTIVATIONS:
        notes.append(
            f"vLLM cannot serve this export: its Llava projector has no {activation!r} "
            "activation (a one-layer connector exports as Linear-identity-Linear); "
            "transformers and SGLang load it; train with mlp2x_gelu for vLLM"
        )
    if _image_token_id(folder) != config.get("image_token_index"):
        notes.append(f"the tokenizer's {IMAGE_PLACEHOLDER} token is not config.json's "
                     "image_token_index")
    with safe_open(str(folder / "model.safetensors"), "pt") as weights:
        names = set(weights.keys())
    if not all(name in names or f"model.{name}" in names for name in PROJECTOR):
        notes.append("the weights hold no multi_modal_projector.linear_1 / linear_2")
    return notes


def _image_token_id(folder: Path) -> int | None:
    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    for token in tokenizer.get("added_tokens", []):
        if token.get("content") == IMAGE_PLACEHOLDER and token.get("special"):
            return token.get("id")
    return None
