"""``perceiver_resampler``: Flamingo's Perceiver Resampler as a token connector.

``num_latents`` learned latents are refined by ``depth`` layers; in each, the latents
attend to the concatenation of the image features and themselves (keys and values), then
pass through a feed-forward block; both are pre-LN with residuals. The stack runs at the
vision width d_v and a final Linear maps it to the LLM width, so the LLM sees
``num_latents`` tokens per image. There are no positional terms: the output does not
depend on the order of the media tokens.

Parameter count (d = d_v, n = num_latents, D = depth, i = heads * dim_head, m = ff_mult):

    n*d                                  latents
  + D * (4d + 4*d*i)                     attention: LN(media), LN(latents); q, kv, out (no bias)
  + D * (2d + 2*m*d^2)                   feed-forward: LN; d -> m*d -> d (no bias)
  + 2d                                   final LayerNorm
  + d*d_l + d_l                          projection to the LLM
"""

from __future__ import annotations

from typing import ClassVar

import torch
from einops import rearrange
from pydantic import Field
from torch import nn

from llava_kit.components import (
    MAX_HEADS, MAX_LAYERS, MAX_MULTIPLIER, MAX_TOKENS, MAX_WIDTH, Options,
)
from llava_kit.connectors.base import Connector


class PerceiverOptions(Options):
    """Perceiver Resampler sizes (Flamingo's defaults)."""

    depth: int = Field(6, ge=1, le=MAX_LAYERS, description="resampler layers")
    heads: int = Field(8, ge=1, le=MAX_HEADS, description="attention heads")
    dim_head: int = Field(64, ge=1, le=MAX_WIDTH, description="width of each head")
    num_latents: int = Field(64, ge=1, le=MAX_TOKENS, description="learned latents = visual tokens per image")
    ff_mult: int = Field(4, ge=1, le=MAX_MULTIPLIER, description="feed-forward width as a multiple of d_v")


class PerceiverAttention(nn.Module):
    """Latents (queries) attend to concat(media, latents) (keys and values)."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = dim_head**-0.5
        inner = heads * dim_head
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, media: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        media = self.norm_media(media)
        latents = self.norm_latents(latents)
        q = rearrange(self.to_q(latents), "b n (h d) -> b h n d", h=self.heads)
        k, v = self.to_kv(torch.cat((media, latents), dim=1)).chunk(2, dim=-1)
        k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (k, v))
        weights = (q * self.scale @ k.transpose(-1, -2)).softmax(dim=-1)
        return self.to_out(rearrange(weights @ v, "b h n d -> b n (h d)"))


def feed_forward(dim: int, mult: int) -> nn.Sequential:
    return nn.Sequential(
        nn.LayerNorm(dim),
        nn.Linear(dim, dim * mult, bias=False),
        nn.GELU(),
        nn.Linear(dim * mult, dim, bias=False),
    )


class PerceiverLayer(nn.Module):
    """One resampler layer: pre-LN attention then pre-LN feed-forward, both residual."""

    def __init__(self, dim: int, options: PerceiverOptions) -> None:
        super().__init__()
        self.attn = PerceiverAttention(dim, options.heads, options.dim_head)
        self.ff = feed_forward(dim, options.ff_mult)

    def forward(self, media: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        latents = latents + self.attn(media, latents)
        return latents + self.ff(latents)


class PerceiverResamplerConnector(Connector):
    """Flamingo Perceiver Resampler: learned latents attend to the image, then a Linear to the LLM."""

    Options: ClassVar[type[Options]] = PerceiverOptions

    def __init__(self, options: PerceiverOptions, vision_dim: int, llm_dim: int) -> None:
        super().__init__(options, vision_dim, llm_dim)
        # Flamingo draws the latents from a standard normal; each layer normalises them.
        self.latents = nn.Parameter(torch.randn(options.num_latents, vision_dim))
        self.layers = nn.ModuleList(PerceiverLayer(vision_dim, options) for _ in range(options.depth))
        self.norm = nn.LayerNorm(vision_dim)
        self.proj = nn.Linear(vision_dim, llm_dim)

    def num_visual_tokens(self, num_patches: int) -> int:
        return self.options.num_latents

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self.check_width(features)
        media = features.to(self.latents.dtype)
        latents = self.latents.expand(features.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(media, latents)
        return self.proj(self.norm(latents))
