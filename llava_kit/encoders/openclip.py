"""OpenCLIP vision towers (LAION, DataComp, ... ViTs) with hf_clip's feature semantics.

open_clip's ``VisionTransformer.forward`` returns only the pooled, projected embedding,
so the trunk is run here block by block: conv patchify, CLS token, positional
embedding, ``ln_pre`` (= hidden_states[0]), then the blocks up to the selected one
(hidden_states[i] = output of block i). ``ln_post``, pooling and ``proj`` are never used.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from typing import Any, ClassVar

import open_clip
import torch
from open_clip.transformer import VisionTransformer
from PIL import Image
from pydantic import ConfigDict, Field, field_validator

from llava_kit.components import Options
from llava_kit.encoders.base import VisionEncoder
from llava_kit.encoders.hf_clip import (
    TORCH_DTYPES,
    ClipFeatureOptions,
    resolve_layer,
    select_tokens,
)
from llava_kit.encoders.preprocess import prepare_image
from llava_kit.errors import ModelError
from llava_kit.pretrained import UNREADABLE_WEIGHTS, weights_error

ImageTransform = Callable[[Image.Image], torch.Tensor]


class OpenCLIPOptions(ClipFeatureOptions):
    """Options of the ``open_clip`` encoder.

    The recipe key ``model_config`` is held as ``vision_cfg`` because pydantic reserves
    the attribute name ``model_config``; it is read and written under ``model_config``.
    """

    model_config = ConfigDict(serialize_by_alias=True)

    model_name: str = Field(description="an open_clip model name, e.g. ViT-L-14 or ViT-B-32")
    pretrained: str | None = Field(
        None, description="open_clip pretrained tag or checkpoint file; None = random weights"
    )
    vision_cfg: dict[str, Any] | None = Field(
        None,
        alias="model_config",
        description="overrides of the model's vision_cfg (width, layers, patch_size, ...)",
    )

    @field_validator("vision_cfg")
    @classmethod
    def _known_vision_keys(cls, overrides: dict[str, Any] | None) -> dict[str, Any] | None:
        if overrides is None:
            return None
        known = sorted(field.name for field in dataclasses.fields(open_clip.CLIPVisionCfg))
        for key in overrides:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                suggestion = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"{key!r} is not an open_clip vision_cfg field{suggestion}")
        if "patch_dropout" in overrides:
            raise ValueError(
                "patch_dropout is not supported: dropping patches changes the number of "
                "visual tokens per image"
            )
        return overrides


class OpenCLIPEncoder(VisionEncoder):
    """OpenCLIP vision transformer; features of one transformer block."""

    Options: ClassVar[type[Options]] = OpenCLIPOptions

    def __init__(self, options: OpenCLIPOptions) -> None:
        super().__init__(options)
        self.options: OpenCLIPOptions = options
        visual, self.transform = _create_visual(options)
        self.visual = visual.to(TORCH_DTYPES[options.dtype])
        self._layer = resolve_layer(
            options.select_layer,
            len(visual.transformer.resblocks),
            where=f"open_clip {options.model_name}",
        )

    @property
    def hidden_size(self) -> int:
        return self.visual.transformer.width

    @property
    def num_patches(self) -> int:
        rows, cols = self.visual.grid_size
        return rows * cols + (1 if self.options.select_feature == "cls_patch" else 0)

    @property
    def image_size(self) -> int:
        return self.visual.image_size[0]

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        mean = self.visual.preprocess_cfg["mean"]
        return self.transform(prepare_image(image, self.options.image_aspect_ratio, mean))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        visual = self.visual
        weight = visual.conv1.weight
        x = visual.conv1(pixel_values.to(device=weight.device, dtype=weight.dtype))
        x = x.flatten(2).transpose(1, 2)  # [B, grid*grid, width]
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
        x = visual.ln_pre(x)
        # Older open_clip releases run their blocks sequence-first.
        batch_first = getattr(visual.transformer, "batch_first", False)
        if not batch_first:
            x = x.transpose(0, 1)
        # Blocks after the selected one cannot change its output: skip them.
        for block in visual.transformer.resblocks[: self._layer]:
            x = block(x)
        if not batch_first:
            x = x.transpose(0, 1)
        return select_tokens(x, self.options.select_feature)


def _create_visual(options: OpenCLIPOptions) -> tuple[VisionTransformer, ImageTransform]:
    """The model's vision tower and its evaluation transform; the text tower is dropped."""
    overrides: dict[str, Any] = {}
    base = _builtin_config(options.model_name)
    if options.vision_cfg:
        if base is None:
            raise ModelError(
                f"open_clip: model_config overrides need a built-in model name, got "
                f"{options.model_name!r}",
                hint="use a name from open_clip.list_models(), e.g. ViT-B-32",
            )
        overrides["vision_cfg"] = {**base["vision_cfg"], **options.vision_cfg}
    if options.pretrained is None and base is not None and _has_plain_text_tower(base):
        # With random weights the text tower is never loaded nor used, and a full one costs
        # seconds and memory (ViT-L-14: 123M parameters). open_clip builds the vision tower
        # first, so its weights for a given seed do not depend on this.
        overrides["text_cfg"] = {**base["text_cfg"], **_STUB_TEXT_TOWER}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.init_seed)
        try:
            model, _, transform = open_clip.create_model_and_transforms(
                options.model_name,
                pretrained=options.pretrained,
                # Dropped patches would change the number of visual tokens per image.
                force_patch_dropout=0.0,
                **overrides,
            )
        except UNREADABLE_WEIGHTS as exc:
            raise weights_error("open_clip option 'pretrained'", str(options.pretrained), exc) \
                from exc
        except (RuntimeError, OSError, ValueError) as exc:
            raise ModelError(
                f"open_clip: cannot create {options.model_name!r} "
                f"(pretrained={options.pretrained!r}): {exc}",
                hint="runs are offline: use pretrained: null (random weights) or a local "
                "checkpoint file path",
            ) from exc
    visual = model.visual
    if not isinstance(visual, VisionTransformer):
        raise ModelError(
            f"open_clip: {options.model_name!r} has a {type(visual).__name__} image tower; only "
            "open_clip VisionTransformer towers are supported",
            hint="pick a ViT model (ViT-B-32, ViT-L-14, ViT-L-14-336, ...)",
        )
    if visual.image_size[0] != visual.image_size[1]:
        raise ModelError(
            f"open_clip: {options.model_name!r} takes {visual.image_size} images; only square "
            "inputs are supported",
            hint="set model_config.image_size to a single integer",
        )
    return visual, transform


_STUB_TEXT_TOWER = {"width": 8, "heads": 1, "layers": 1, "vocab_size": 8}


def _has_plain_text_tower(config: dict[str, Any]) -> bool:
    """open_clip's own text transformer (not a Hugging Face one, not CoCa's decoder pair)."""
    return "hf_model_name" not in config["text_cfg"] and "multimodal_cfg" not in config


def _builtin_config(model_name: str) -> dict[str, Any] | None:
    """The built-in config, None for hf-hub:/local-dir: names; unknown names are errors."""
    if ":" in model_name:
        return None
    config = open_clip.get_model_config(model_name.replace("/", "-"))
    if config is None:
        close = difflib.get_close_matches(model_name, open_clip.list_models(), n=3)
        raise ModelError(
            f"open_clip: unknown model name {model_name!r}",
            hint=f"did you mean {' or '.join(map(repr, close))}?"
            if close
            else "see open_clip.list_models() for the names",
        )
    return config
