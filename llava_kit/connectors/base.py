"""The connector contract, shared by both connector families.

``tokens`` connectors map vision features to embeddings that are spliced into the LLM's
input at each ``<image>``. ``fusion`` connectors leave (almost) all of the input alone:
the ``<image>`` marker takes ``num_visual_tokens`` positions (usually one learned
embedding) and ``attach`` inserts new layers into the LLM that attend to the features.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

import torch
from torch import nn

from llava_kit.components import Options
from llava_kit.errors import ModelError

ConnectorFamily = Literal["tokens", "fusion"]


class Connector(nn.Module, ABC):
    """Maps vision features [B, N, d_v] to what the LLM consumes."""

    Options: ClassVar[type[Options]]
    family: ClassVar[ConnectorFamily] = "tokens"

    def __init__(self, options: Options, vision_dim: int, llm_dim: int) -> None:
        super().__init__()
        self.options = options
        self.vision_dim = vision_dim
        self.llm_dim = llm_dim

    def check_width(self, features: torch.Tensor, what: str = "features") -> None:
        """Raise a ``ModelError`` unless ``features`` [..., d] have this connector's ``vision_dim``.

        Every connector calls this before touching the features: a wrong width would
        otherwise surface as a shape error deep inside a layer, naming neither part.
        """
        if features.shape[-1] != self.vision_dim:
            raise ModelError(
                f"{type(self).__name__}: {what} have width {features.shape[-1]} but the "
                f"connector was built for vision width {self.vision_dim}",
                hint="rebuild the connector from the encoder actually in use (hidden_size)",
            )

    @abstractmethod
    def num_visual_tokens(self, num_patches: int) -> int:
        """Positions one image occupies in the LLM sequence (N_vis)."""

    @abstractmethod
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """[B, N, d_v] -> [B, N_vis, d_l]: the embeddings placed at the image positions."""

    def attach(self, llm: nn.Module) -> None:
        """Fusion connectors wrap the LLM's decoder layers here; token connectors do nothing."""

    def set_media(self, features: torch.Tensor | None, media_positions: torch.Tensor | None) -> None:
        """Fusion connectors receive this batch's image features before the LLM runs."""
