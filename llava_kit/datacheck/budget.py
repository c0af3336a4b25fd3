"""What the data check needs from the model, without loading its weights.

The tokenizer (for label masks and lengths) and the number of positions one image takes
in the LLM sequence (for the max_length budget). Parts are built on the meta device, so
no parameter memory is allocated and nothing is read but configs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from transformers import CLIPVisionConfig, PreTrainedTokenizerBase

from llava_kit.errors import LlavaKitError
from llava_kit.model.build import instantiate

if TYPE_CHECKING:
    from llava_kit.recipes.schema import ModelSpec


def load_tokenizer(model: "ModelSpec") -> PreTrainedTokenizerBase:
    """The recipe's tokenizer, loaded by the LLM component as training loads it."""
    return instantiate(model.llm).load_tokenizer()


def visual_tokens_per_image(model: "ModelSpec") -> int | None:
    """The connector's num_visual_tokens(encoder.num_patches); None when it cannot be
    known without loading weights (the truncation check is then left out)."""
    try:
        patches, vision_dim = _encoder_geometry(model)
        llm_dim = int(instantiate(model.llm).load_config().hidden_size)
        with torch.device("meta"):
            connector = instantiate(model.connector, vision_dim, llm_dim)
        return int(connector.num_visual_tokens(patches))
    except (LlavaKitError, OSError, ValueError, TypeError, AttributeError, NotImplementedError):
        return None


def _encoder_geometry(model: "ModelSpec") -> tuple[int, int]:
    """(num_patches, hidden_size) of the encoder, from its config alone."""
    options: Any = model.encoder.options
    if model.encoder.name == "hf_clip" and options.path is not None:
        config = CLIPVisionConfig.from_pretrained(options.path)
        side = config.image_size // config.patch_size
        extra = 1 if options.select_feature == "cls_patch" else 0
        return side * side + extra, int(config.hidden_size)
    with torch.device("meta"):
        encoder = instantiate(model.encoder)
    return int(encoder.num_patches), int(encoder.hidden_size)
