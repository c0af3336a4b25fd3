"""``qformer``: BLIP-2's Querying Transformer as a token connector.

Learned query tokens pass through a BERT-style stack (transformers' ``Blip2QFormerModel``)
whose layers 0, f, 2f, ... (f = ``cross_attention_frequency``) also cross-attend to the
vision features; the final query states, projected to the LLM width, are the visual
tokens. The LLM therefore sees ``num_queries`` tokens per image whatever the patch count.

Parameter count (h = hidden_size, I = intermediate_size, L = num_layers, Q = num_queries,
C = ceil(L / f) cross-attention layers), derived from the module structure:

    Q*h                                  queries
  + 2h                                   embedding LayerNorm
  + L * (4h^2 + 6h)                      self-attention: q, k, v, out (+ biases) + LayerNorm
  + C * (2h^2 + 2*d_v*h + 6h)            cross-attention: q, out at h; k, v from d_v
  + L * (2hI + I + 3h)                   query feed-forward (+ LayerNorm)
  + h*d_l + d_l                          projection to the LLM

At BLIP-2's size (h 768, I 3072, L 12, f 2, d_v 1408) the body is 105,137,664.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field, model_validator
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel

from llava_kit.components import MAX_HEADS, MAX_LAYERS, MAX_TOKENS, MAX_WIDTH, Options
from llava_kit.connectors.base import Connector

QUERY_INIT_STD = 0.02  # LAVIS initialises the queries normal(0, 0.02)


class QFormerOptions(Options):
    """Size knobs of the Q-Former; defaults are small, for experiments (BLIP-2: 32/12/768/12/3072)."""

    num_queries: int = Field(32, ge=1, le=MAX_TOKENS, description="learned queries = visual tokens per image")
    num_layers: int = Field(4, ge=1, le=MAX_LAYERS, description="BERT-style layers")
    hidden_size: int = Field(256, ge=1, le=MAX_WIDTH, description="width of the query stack")
    num_heads: int = Field(4, ge=1, le=MAX_HEADS, description="attention heads (must divide hidden_size)")
    intermediate_size: int = Field(1024, ge=1, le=MAX_WIDTH, description="feed-forward width")
    cross_attention_frequency: int = Field(
        2, ge=1, description="layers 0, f, 2f, ... cross-attend to the vision features"
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="hidden and attention dropout")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "QFormerOptions":
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}"
            )
        return self


class QFormerConnector(Connector):
    """BLIP-2 Q-Former: learned queries cross-attend to the image, then a Linear to the LLM."""

    Options: ClassVar[type[Options]] = QFormerOptions

    def __init__(self, options: QFormerOptions, vision_dim: int, llm_dim: int) -> None:
        super().__init__(options, vision_dim, llm_dim)
        config = Blip2QFormerConfig(
            hidden_size=options.hidden_size,
            num_hidden_layers=options.num_layers,
            num_attention_heads=options.num_heads,
            intermediate_size=options.intermediate_size,
            cross_attention_frequency=options.cross_attention_frequency,
            encoder_hidden_size=vision_dim,
            hidden_dropout_prob=options.dropout,
            attention_probs_dropout_prob=options.dropout,
        )
        self.qformer = Blip2QFormerModel(config)
        self.queries = nn.Parameter(torch.empty(1, options.num_queries, options.hidden_size))
        nn.init.normal_(self.queries, std=QUERY_INIT_STD)
        self.proj = nn.Linear(options.hidden_size, llm_dim)

    def num_visual_tokens(self, num_patches: int) -> int:
        return self.options.num_queries

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self.check_width(features)
        queries = self.queries.expand(features.shape[0], -1, -1)
        states = self.qformer(
            query_embeds=queries, encoder_hidden_states=features.to(self.queries.dtype)
        ).last_hidden_state
        return self.proj(states)
