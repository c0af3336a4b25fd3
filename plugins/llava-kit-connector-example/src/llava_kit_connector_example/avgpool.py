"""``avgpool2x2_mlp``: average-pool each 2x2 block of the patch grid, then an MLP to the LLM.

A vision tower with an S x S patch grid gives S^2 features; pooling 2x2 blocks leaves
(S/2)^2 tokens, a quarter of the LLM sequence budget that ``mlp2x_gelu`` would use. The
MLP is LLaVA-1.5's (Linear, GELU, Linear for depth 2) applied to the pooled features.

An encoder run with ``select_feature: cls_patch`` puts a CLS token before the grid
(S^2 + 1 features). The CLS token has no place in the grid, so ``cls_token`` decides:
``drop`` discards it, ``keep`` passes it through the MLP as one extra token in front.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from llava_kit.components import Options
from llava_kit.connectors.base import Connector
from llava_kit.errors import ModelError
from pydantic import Field
from torch import nn


class AvgPoolMLPOptions(Options):
    """Options of ``avgpool2x2_mlp``."""

    depth: int = Field(2, ge=1, description="Linear layers of the MLP (GELU between them)")
    cls_token: Literal["drop", "keep"] = Field(
        "drop", description="what to do with a CLS token in front of the grid (cls_patch)"
    )


def grid_layout(num_tokens: int) -> tuple[bool, int]:
    """(has a CLS token in front, side of the square patch grid) for ``num_tokens`` features."""
    side = math.isqrt(num_tokens)
    if side * side == num_tokens:
        return False, side
    side = math.isqrt(num_tokens - 1)
    if num_tokens > 1 and side * side == num_tokens - 1:
        return True, side
    raise ModelError(
        f"avgpool2x2_mlp: {num_tokens} vision features are neither a square patch grid "
        "nor a square grid plus a CLS token",
        hint="use an encoder whose image_size / patch_size gives a square grid",
    )


class AvgPoolMLPConnector(Connector):
    """2x2 average pooling of the patch grid (N/4 tokens), then an MLP to the LLM width."""

    Options: ClassVar[type[Options]] = AvgPoolMLPOptions

    def __init__(self, options: AvgPoolMLPOptions, vision_dim: int, llm_dim: int) -> None:
        super().__init__(options, vision_dim, llm_dim)
        layers: list[nn.Module] = [nn.Linear(vision_dim, llm_dim)]
        for _ in range(options.depth - 1):
            layers += [nn.GELU(), nn.Linear(llm_dim, llm_dim)]
        self.proj = nn.Sequential(*layers)

    def _layout(self, num_tokens: int) -> tuple[bool, int]:
        has_cls, side = grid_layout(num_tokens)
        if side % 2:
            raise ModelError(
                f"avgpool2x2_mlp: the patch grid is {side}x{side}; 2x2 pooling needs an even side",
                hint="choose image_size / patch_size even (e.g. 336 / 14 = 24)",
            )
        return has_cls, side

    def num_visual_tokens(self, num_patches: int) -> int:
        has_cls, side = self._layout(num_patches)
        keep_cls = has_cls and self.options.cls_token == "keep"
        return (side // 2) ** 2 + int(keep_cls)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self.check_width(features)
        features = features.to(self.proj[0].weight.dtype)
        has_cls, side = self._layout(features.shape[1])
        cls, patches = (features[:, :1], features[:, 1:]) if has_cls else (None, features)
        # Patch tokens are in row-major order, as a ViT flattens its grid.
        grid = rearrange(patches, "b (h w) d -> b d h w", h=side, w=side)
        pooled = rearrange(F.avg_pool2d(grid, kernel_size=2), "b d h w -> b (h w) d")
        if cls is not None and self.options.cls_token == "keep":
            pooled = torch.cat([cls, pooled], dim=1)
        return self.proj(pooled)
