"""LLaVA's token connectors: ``linear`` (the paper's W) and ``mlp{N}x_gelu`` (v1.5: N=2).

Both keep every visual feature as one LLM token. The projection lives in ``proj`` so
that reference LLaVA checkpoints load by renaming a single prefix
(``model.mm_projector.`` -> ``proj.``):

- linear: ``mm_projector.weight`` / ``.bias`` -> ``proj.weight`` / ``proj.bias``
  (``proj`` is the ``nn.Linear`` itself, as in the reference).
- mlp{N}x_gelu: ``mm_projector.{i}.weight`` / ``.bias`` -> ``proj.{i}.weight`` / ``.bias``
  for the Linear layers at i = 0, 2, 4, ...; the GELUs at odd indices hold no weights.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import nn

from llava_kit.components import MAX_LAYERS, NoOptions, Options
from llava_kit.connectors.base import Connector


class MLPOptions(Options):
    """Options of the ``mlp{N}x_gelu`` connector."""

    depth: int = Field(2, ge=1, le=MAX_LAYERS, description="number of Linear layers (GELU between them)")


class _TokenProjection(Connector):
    """One projected token per visual feature; subclasses build ``self.proj``."""

    proj: nn.Module

    def num_visual_tokens(self, num_patches: int) -> int:
        return num_patches

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self.check_width(features)
        # The encoder may run in another precision than the connector (e.g. a bf16 tower).
        weight = next(self.proj.parameters())
        return self.proj(features.to(weight.dtype))


class LinearConnector(_TokenProjection):
    """One linear layer from vision to LLM width (LLaVA v1, the paper's W)."""

    Options: ClassVar[type[Options]] = NoOptions

    def __init__(self, options: NoOptions, vision_dim: int, llm_dim: int) -> None:
        super().__init__(options, vision_dim, llm_dim)
        self.proj = nn.Linear(vision_dim, llm_dim)


class MLPConnector(_TokenProjection):
    """Linear layers with GELU between them (LLaVA-1.5's mlp2x_gelu; mlp{N}x_gelu for depth N)."""

    Options: ClassVar[type[Options]] = MLPOptions

    def __init__(self, options: MLPOptions, vision_dim: int, llm_dim: int) -> None:
        super().__init__(options, vision_dim, llm_dim)
        layers: list[nn.Module] = [nn.Linear(vision_dim, llm_dim)]
        for _ in range(options.depth - 1):
            layers += [nn.GELU(), nn.Linear(llm_dim, llm_dim)]
        self.proj = nn.Sequential(*layers)
