"""``gated_xattn``: Flamingo-style fusion, tanh-gated cross-attention in front of decoder layers.

Each ``<image>`` takes ONE position of the LLM input, holding a learned marker embedding
(what ``forward`` returns). ``attach`` puts a gated block in front of every n-th decoder
layer through forward pre-hooks: the blocks are this connector's submodules (stage 1 with
``trainable: [connector]`` trains them), and the LLM's own modules and state-dict keys
stay exactly as loaded. The blocks' keys read ``blocks.<layer index>.…``.

Per LLM call the hooks need this batch's media (``set_media``): the first call after it
is the full sequence (training, or the generation prefill); later calls are decode steps
whose new tokens attend to their row's last image, reusing cached keys/values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import nn
from torch.utils.hooks import RemovableHandle

from llava_kit.components import (
    MAX_HEADS, MAX_LAYERS, MAX_MULTIPLIER, MAX_TOKENS, MAX_WIDTH, Options,
)
from llava_kit.connectors.base import Connector
from llava_kit.connectors.fusion_blocks import GatedCrossAttentionBlock, PerceiverResampler
from llava_kit.connectors.fusion_layers import decoder_stack
from llava_kit.connectors.fusion_media import MediaLayout, layout_media
from llava_kit.errors import ModelError


class GatedXAttnOptions(Options):
    """Options of the ``gated_xattn`` connector."""

    cross_attn_every_n_layers: int = Field(
        1, ge=1, description="a block before decoder layers n-1, 2n-1, ... (Flamingo-3B: 1, -9B: 4)"
    )
    num_heads: int = Field(8, ge=1, le=MAX_HEADS, description="cross-attention heads")
    dim_head: int = Field(64, ge=1, le=MAX_WIDTH, description="width of one cross-attention head")
    ff_mult: int = Field(4, ge=1, le=MAX_MULTIPLIER, description="feed-forward width as a multiple of the LLM width")
    num_latents: int | None = Field(
        None, ge=1, le=MAX_TOKENS,
        description="perceiver-resampler latents per image; null: attend to the raw patches",
    )
    resampler_depth: int = Field(
        2, ge=1, le=MAX_LAYERS, description="perceiver-resampler layers (with num_latents)"
    )


@dataclass
class _Media:
    """One batch's media, valid from ``set_media`` until the next one."""

    layout: MediaLayout
    per_slot: int  # media tokens per image
    llm_calls: int = 0
    keys_values: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)


class GatedXAttnConnector(Connector):
    """Flamingo gated cross-attention blocks inside the LLM; one marker token per image."""

    Options: ClassVar[type[Options]] = GatedXAttnOptions
    family = "fusion"

    def __init__(self, options: GatedXAttnOptions, vision_dim: int, llm_dim: int) -> None:
        super().__init__(options, vision_dim, llm_dim)
        self.marker = nn.Parameter(torch.randn(llm_dim) * 0.02)
        self.resampler = (
            PerceiverResampler(vision_dim, options.num_latents, options.resampler_depth,
                               options.num_heads, options.dim_head, options.ff_mult)
            if options.num_latents is not None else None
        )
        # Filled by attach: how many blocks there are depends on the LLM's depth.
        self.blocks = nn.ModuleDict()
        self._handles: list[RemovableHandle] = []
        self._media: _Media | None = None

    def num_visual_tokens(self, num_patches: int) -> int:
        return 1

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """[n, N, d_v] -> [n, 1, d_l]: the learned marker written at each ``<image>``."""
        self.check_width(features)
        return self.marker.view(1, 1, -1).expand(features.shape[0], 1, -1)

    def attach(self, llm: nn.Module) -> None:
        if self._handles:
            raise ModelError("gated_xattn: this connector is already attached to an LLM",
                             hint="build one connector per model (model.build_model does)")
        stack, layers = decoder_stack(llm)
        every = self.options.cross_attn_every_n_layers
        chosen = [index for index in range(len(layers)) if (index + 1) % every == 0]
        if not chosen:
            raise ModelError(
                f"gated_xattn: cross_attn_every_n_layers={every} but the LLM has only "
                f"{len(layers)} decoder layers, so no block would be inserted",
                hint=f"set model.connector.cross_attn_every_n_layers <= {len(layers)}",
            )
        like = self.marker
        for index in chosen:
            block = GatedCrossAttentionBlock(self.llm_dim, self.vision_dim, self.options.num_heads,
                                             self.options.dim_head, self.options.ff_mult)
            self.blocks[str(index)] = block.to(device=like.device, dtype=like.dtype)
            self._handles.append(layers[index].register_forward_pre_hook(
                partial(self._fuse, str(index)), with_kwargs=True))
        self._handles.append(stack.register_forward_pre_hook(self._count_llm_call))

    def set_media(
        self, features: torch.Tensor | None, media_positions: torch.Tensor | None
    ) -> None:
        """``features`` [n, N, d_v] in batch order; ``media_positions`` [B, T] marks ``<image>``."""
        if media_positions is None:
            self._media = None
            return
        if features is not None:
            self.check_width(features, "media")
            features = features.to(self.marker.dtype)
        layout = layout_media(features, media_positions, self.vision_dim, self.marker.dtype)
        if self.resampler is not None:
            # Also on a text-only batch's empty slot, so the resampler stays in the graph.
            media = layout.media
            resampled = self.resampler(media.flatten(0, 1)).unflatten(0, media.shape[:2])
            layout = replace(layout, media=resampled)
        self._media = _Media(layout=layout, per_slot=layout.media.shape[2])

    def _count_llm_call(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if self._media is not None:
            self._media.llm_calls += 1

    def _fuse(
        self, key: str, layer: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        hidden = args[0] if args else kwargs["hidden_states"]
        media = self._media if self._media is not None else self._no_media(hidden)
        slots = self._token_slots(media, hidden)
        keys_values = media.keys_values.get(key)
        if keys_values is None:
            keys_values = self.blocks[key].attn.keys_values(media.layout.media)
            if not torch.is_grad_enabled():  # generation: computed once, reused every step
                media.keys_values[key] = keys_values
        hidden = self.blocks[key](hidden, keys_values, slots, media.per_slot)
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    def _no_media(self, hidden: torch.Tensor) -> _Media:
        """Without set_media (the LLM called on its own) every position sees no image."""
        positions = torch.zeros(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        layout = layout_media(None, positions, self.vision_dim, self.marker.dtype)
        return _Media(layout=layout, per_slot=1, llm_calls=1)

    @staticmethod
    def _token_slots(media: _Media, hidden: torch.Tensor) -> torch.Tensor:
        layout = media.layout
        if hidden.shape[0] != layout.token_slots.shape[0]:
            raise ModelError(
                f"gated_xattn: the LLM runs on {hidden.shape[0]} rows but the media were handed "
                f"over for {layout.token_slots.shape[0]}",
                hint="call LlavaModel.forward / generate (beam search and several sequences per "
                "prompt are not supported with a fusion connector)",
            )
        if media.llm_calls > 1:  # decode step: no new <image>; each row's last image is seen
            return layout.last_slots.unsqueeze(1).expand(-1, hidden.shape[1])
        if layout.token_slots.shape[1] != hidden.shape[1]:
            raise ModelError(
                f"gated_xattn: the LLM runs on {hidden.shape[1]} positions but the media "
                f"mask covers {layout.token_slots.shape[1]}",
                hint="hand the media over with the same input_ids the LLM runs on",
            )
        return layout.token_slots

