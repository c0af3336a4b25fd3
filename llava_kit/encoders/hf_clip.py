"""CLIP vision towers through transformers (LLaVA's encoder: openai/clip-vit-large-patch14).

Also defines what every CLIP-style encoder here shares: the feature-selection options
and their meaning, so that ``open_clip`` behaves exactly like ``hf_clip``.
"""

from __future__ import annotations

import difflib
from typing import Any, ClassVar, Literal

import torch
from PIL import Image
from pydantic import Field, field_validator, model_validator
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

from llava_kit.components import Options
from llava_kit.encoders.base import VisionEncoder
from llava_kit.encoders.preprocess import AspectRatio, clip_image_processor, prepare_image
from llava_kit.errors import ModelError
from llava_kit.pretrained import UNREADABLE_WEIGHTS, weights_error

SelectFeature = Literal["patch", "cls_patch"]
DType = Literal["float32", "bfloat16", "float16"]
TORCH_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


class ClipFeatureOptions(Options):
    """Which features a CLIP-style encoder hands to the connector, and how images are prepared."""

    select_layer: int = Field(
        -2, description="index into hidden_states; hidden_states[0] is the embedding output"
    )
    select_feature: SelectFeature = Field(
        "patch", description="patch drops the CLS token, cls_patch keeps it first"
    )
    image_aspect_ratio: AspectRatio = Field(
        "square", description="pad: centre on a mean-colour square before the processor"
    )
    dtype: DType = "float32"
    init_seed: int = Field(0, description="seed for randomly initialised weights")


def resolve_layer(select_layer: int, num_layers: int, *, where: str) -> int:
    """``select_layer`` as a non-negative index into the num_layers + 1 hidden states."""
    count = num_layers + 1
    if not -count <= select_layer < count:
        raise ModelError(
            f"{where}: select_layer {select_layer} is out of range for a tower with {num_layers} "
            f"layers (hidden_states has {count} entries)",
            hint=f"use a value from {-count} to {num_layers}; -2 (penultimate) is LLaVA's default",
        )
    return select_layer % count


def select_tokens(hidden: torch.Tensor, select_feature: SelectFeature) -> torch.Tensor:
    """[B, 1 + N, d] with CLS first -> the tokens the connector sees."""
    return hidden[:, 1:] if select_feature == "patch" else hidden


def build_clip_vision_model(config: dict[str, Any], seed: int) -> CLIPVisionModel:
    """A randomly initialised tower, the same for the same config and seed.

    The global RNG is left untouched so that building a model never shifts a run's
    data order or dropout masks.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return CLIPVisionModel(CLIPVisionConfig(**config))
        except ValueError as exc:
            raise ModelError(
                f"hf_clip config {config} does not build a CLIP vision tower: {exc}",
                hint="hidden_size must be divisible by num_attention_heads",
            ) from exc


class HFCLIPOptions(ClipFeatureOptions):
    """Options of the ``hf_clip`` encoder."""

    path: str | None = Field(
        None, description="local folder or hub name with CLIP weights and a CLIPImageProcessor"
    )
    config: dict[str, Any] | None = Field(
        None, description="CLIPVisionConfig keyword arguments for a randomly initialised tower"
    )
    trust_remote_code: bool = False

    @field_validator("config")
    @classmethod
    def _known_config_keys(cls, config: dict[str, Any] | None) -> dict[str, Any] | None:
        if config is None:
            return None
        known = set(CLIPVisionConfig().to_dict())
        for key in config:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                suggestion = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"{key!r} is not a CLIPVisionConfig field{suggestion}")
        return config

    @model_validator(mode="after")
    def _exactly_one_source(self) -> HFCLIPOptions:
        if (self.path is None) == (self.config is None):
            raise ValueError(
                "give exactly one of 'path' (pretrained weights) or 'config' (a random tower), "
                f"got {'both' if self.path is not None else 'neither'}"
            )
        return self


class HFCLIPEncoder(VisionEncoder):
    """CLIP vision transformer from transformers; features of one hidden layer."""

    Options: ClassVar[type[Options]] = HFCLIPOptions

    def __init__(self, options: HFCLIPOptions) -> None:
        super().__init__(options)
        self.options: HFCLIPOptions = options
        dtype = TORCH_DTYPES[options.dtype]
        if options.path is not None:
            self.tower = _load_tower(options.path, dtype, options.trust_remote_code)
            self.processor = _load_processor(options.path, options.trust_remote_code)
        else:
            assert options.config is not None  # guaranteed by HFCLIPOptions
            self.tower = build_clip_vision_model(options.config, options.init_seed).to(dtype)
            self.processor = clip_image_processor(self.tower.config.image_size)
        source = f"hf_clip {options.path!r}" if options.path is not None else "hf_clip config"
        self._layer = resolve_layer(
            options.select_layer, self.tower.config.num_hidden_layers, where=source
        )
        _check_processor_size(self.processor, self.tower.config.image_size, source)

    @property
    def hidden_size(self) -> int:
        return self.tower.config.hidden_size

    @property
    def num_patches(self) -> int:
        side = self.tower.config.image_size // self.tower.config.patch_size
        return side * side + (1 if self.options.select_feature == "cls_patch" else 0)

    @property
    def image_size(self) -> int:
        return self.tower.config.image_size

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        prepared = prepare_image(image, self.options.image_aspect_ratio, self.processor.image_mean)
        return self.processor(images=prepared, return_tensors="pt")["pixel_values"][0]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pixel_values = pixel_values.to(device=self.tower.device, dtype=self.tower.dtype)
        hidden_states = self.tower(pixel_values, output_hidden_states=True).hidden_states
        return select_tokens(hidden_states[self._layer], self.options.select_feature)


def _load_tower(path: str, dtype: torch.dtype, trust_remote_code: bool) -> CLIPVisionModel:
    try:
        tower, info = CLIPVisionModel.from_pretrained(
            path, dtype=dtype, trust_remote_code=trust_remote_code, output_loading_info=True
        )
    except UNREADABLE_WEIGHTS as exc:
        raise weights_error("hf_clip", path, exc) from exc
    # RuntimeError: weights of the wrong shapes (a checkpoint of another architecture).
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(
            f"hf_clip: cannot load a CLIP vision model from {path!r}: {_first_line(exc)}",
            hint="set model.encoder.path to a local folder saved with save_pretrained, or a hub "
            "name already in the local cache (llava-kit runs offline)",
        ) from exc
    # transformers fills missing weights with random values and only warns: a wrong
    # checkpoint would then train on noise, so refuse it here.
    missing = sorted(info["missing_keys"])
    if missing:
        raise ModelError(
            f"hf_clip: {path!r} lacks {len(missing)} vision-tower weights "
            f"(first: {', '.join(missing[:3])})",
            hint="point model.encoder.path at a CLIP (or CLIP vision) checkpoint",
        )
    return tower


def _load_processor(path: str, trust_remote_code: bool) -> CLIPImageProcessor:
    try:
        return CLIPImageProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"hf_clip: cannot load the image processor from {path!r}: {_first_line(exc)}",
            hint="the folder needs a preprocessor_config.json (CLIPImageProcessor.save_pretrained)",
        ) from exc


def _check_processor_size(processor: CLIPImageProcessor, image_size: int, source: str) -> None:
    # Probing with a blank image covers every resize/crop setting a saved processor may have.
    probe = processor(images=Image.new("RGB", (image_size, image_size)), return_tensors="pt")
    produced = tuple(probe["pixel_values"].shape[-2:])
    if produced != (image_size, image_size):
        raise ModelError(
            f"{source}: the image processor produces {produced[0]}x{produced[1]} images but the "
            f"tower expects {image_size}x{image_size}",
            hint="save the processor that belongs to this tower (matching size and crop_size)",
        )


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
