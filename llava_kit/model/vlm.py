"""The assembled vision-language model: encoder -> connector -> LLM.

Batches arrive with every image already expanded to ``num_visual_tokens`` positions of
``IMAGE_TOKEN_ID`` (done by the collator, so truncation and padding happen after
splicing, as in the reference). Here those positions get the connector's outputs and
the LLM runs on ``inputs_embeds``. No vocabulary id is reserved for images.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.modeling_outputs import CausalLMOutputWithPast

from llava_kit.connectors.base import Connector
from llava_kit.constants import IMAGE_TOKEN_ID
from llava_kit.encoders.base import VisionEncoder
from llava_kit.errors import ModelError


class LlavaModel(nn.Module):
    """One module holding the three parts; stages train named subsets of it."""

    def __init__(
        self,
        encoder: VisionEncoder,
        connector: Connector,
        llm: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
    ) -> None:
        super().__init__()
        llm_width = llm.get_input_embeddings().embedding_dim
        if connector.llm_dim != llm_width or connector.vision_dim != encoder.hidden_size:
            raise ModelError(
                f"connector maps {connector.vision_dim} -> {connector.llm_dim}, but the encoder "
                f"gives {encoder.hidden_size} and the LLM takes {llm_width}",
                hint="build the connector from this encoder and LLM (model.build_model does)",
            )
        self.encoder = encoder
        self.connector = connector
        self.llm = llm
        self.tokenizer = tokenizer
        self.num_visual_tokens = connector.num_visual_tokens(encoder.num_patches)
        connector.attach(llm)
        self._collect_vision_parameters()

    def _collect_vision_parameters(self) -> None:
        """The vision side's parameters, gathered once instead of walked on every step.

        Freezing and dtype casts change these parameter objects in place; moving the model
        between kinds of tensor (the meta device and back) or loading with ``assign=True``
        replaces them, so ``_apply`` and ``load_state_dict`` gather them again.
        """
        self._encoder_parameters = tuple(self.encoder.parameters())
        self._connector_parameters = tuple(self.connector.parameters())

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> "LlavaModel":
        super()._apply(fn, recurse)
        self._collect_vision_parameters()
        return self

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._collect_vision_parameters()
        return result

    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    def encoder_is_trainable(self) -> bool:
        return any(p.requires_grad for p in self._encoder_parameters)

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[n, 3, H, W] -> encoder features [n, N, d_v]; a frozen encoder runs without autograd."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.encoder_is_trainable()):
            return self.encoder(pixel_values)

    def project_features(self, features: torch.Tensor) -> torch.Tensor:
        """Encoder features [n, N, d_v] (fresh or from a feature cache) -> visual tokens."""
        return self.connector(features.to(self._connector_parameters[0].dtype))

    def embed(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        visual_keep: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token embeddings with the visual tokens written at the image positions.

        ``image_features`` (read from the frozen-feature cache) replace ``pixel_values``:
        only the connector runs on them.
        """
        return self._embed(input_ids, pixel_values, visual_keep, image_features)[0]

    def _embed(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None,
        visual_keep: torch.Tensor | None,
        image_features: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The embeddings and the batch's encoder features (None without images).

        The order is the same on every rank, text embeddings first, then the vision side
        (real or the text-only stand-in): ZeRO-3 gathers parameters module by module as
        they run, so ranks running modules in different orders would deadlock.
        """
        image_mask = input_ids == IMAGE_TOKEN_ID
        embed_tokens = self.llm.get_input_embeddings()
        embeds = embed_tokens(input_ids.masked_fill(image_mask, 0))
        features = self.image_features(pixel_values, image_features)
        if features is not None:
            visual = self.project_features(features)
            # A sample cut by max_length keeps only its first visual tokens.
            visual = visual[visual_keep] if visual_keep is not None else visual.flatten(0, 1)
            if visual.shape[0] != int(image_mask.sum()):
                raise ModelError(
                    f"batch has {int(image_mask.sum())} image positions but "
                    f"{visual.shape[0]} visual tokens",
                    hint="batches must come from llava_kit.data.collate.Collator",
                )
            embeds = embeds.masked_scatter(image_mask.unsqueeze(-1), visual.to(embeds.dtype))
        elif image_mask.any():
            raise ModelError("batch has image positions but no pixel_values")
        elif torch.is_grad_enabled() and self._vision_side_trainable():
            # Text-only batch: every trainable vision-side parameter must still take part in
            # the graph (and, under ZeRO-3, every rank must gather the same modules), or
            # data-parallel gradient reduction waits for it forever.
            embeds = embeds + 0.0 * self._dummy_visual().sum().to(embeds.dtype)
        return embeds, features

    def image_features(
        self, pixel_values: torch.Tensor | None, image_features: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """The batch's encoder features: given (feature cache) or computed; None without images."""
        if image_features is not None and image_features.shape[0] > 0:
            return image_features
        if pixel_values is not None and pixel_values.shape[0] > 0:
            return self.encode(pixel_values)
        return None

    def _vision_side_trainable(self) -> bool:
        return any(p.requires_grad for p in self._connector_parameters) or self.encoder_is_trainable()

    def _dummy_visual(self) -> torch.Tensor:
        size = self.encoder.image_size
        blank = torch.zeros(1, 3, size, size, device=self.device)
        return self.project_features(self.encode(blank.to(self._encoder_parameters[0].dtype)))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        visual_keep: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        **llm_kwargs: Any,
    ) -> CausalLMOutputWithPast:
        # Images are encoded once: token connectors splice them, fusion ones attend to them.
        embeds, features = self._embed(input_ids, pixel_values, visual_keep, image_features)
        self._hand_media_to_connector(input_ids, features, visual_keep)
        return self.llm(
            inputs_embeds=embeds, attention_mask=attention_mask, labels=labels,
            use_cache=False, **llm_kwargs,
        )

    def _hand_media_to_connector(
        self,
        input_ids: torch.Tensor,
        features: torch.Tensor | None,
        visual_keep: torch.Tensor | None = None,
    ) -> None:
        if self.connector.family != "fusion":
            return
        if features is not None and visual_keep is not None:
            # Images whose marker max_length cut off are not in the sequence at all.
            features = features[visual_keep.any(dim=1)]
        if features is not None and features.shape[0] == 0:
            features = None
        self.connector.set_media(features, input_ids == IMAGE_TOKEN_ID)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_p: float | None = None,
        stop_strings: tuple[str, ...] = (),
        **generate_kwargs: Any,
    ) -> torch.Tensor:
        """New token ids [B, <= max_new_tokens] for left-padded prompts (KV cache on).

        ``temperature == 0`` is greedy decoding; above it, sampling (with ``top_p``).
        """
        embeds, features = self._embed(input_ids, pixel_values, None, None)
        self._hand_media_to_connector(input_ids, features)
        sampling: dict[str, Any] = {"do_sample": False}
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature}
            if top_p is not None:
                sampling["top_p"] = top_p
        if stop_strings:
            generate_kwargs = {**generate_kwargs, "stop_strings": list(stop_strings),
                               "tokenizer": self.tokenizer}
        return self.llm.generate(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
            use_cache=True,
            **sampling,
            **generate_kwargs,
        )
