"""runtime.feature_cache: when a stage may read the frozen encoder's features from disk
instead of running the encoder, and filling the cache before the stage trains."""

from __future__ import annotations

from pathlib import Path

import torch

from llava_kit.data.dataset import ConversationDataset
from llava_kit.data.feature_cache import FeatureCache
from llava_kit.model.vlm import LlavaModel
from llava_kit.train.context import RunContext
from llava_kit.train.distributed import barrier
from llava_kit.train.zero3 import is_zero3_partitioned


def caches_features(model: LlavaModel) -> bool:
    """Only a frozen encoder's features stay the same from step to step; fusion connectors
    consume the encoder inside the LLM, and ZeRO-3 holds only slices of its weights."""
    return not (
        model.encoder_is_trainable() or model.connector.family == "fusion"
        or is_zero3_partitioned(model.encoder)
    )


def attach_feature_cache(
    dataset: ConversationDataset, model: LlavaModel, root: Path, ctx: RunContext
) -> FeatureCache | None:
    """Fill the cache for ``dataset``'s images (rank 0) and make the dataset read it;
    None when this stage must run the encoder."""
    if not caches_features(model):
        return None
    encoder = model.encoder
    cache = FeatureCache(root, encoder, ctx.precision)
    if ctx.dist.is_main:
        parameter = next(encoder.parameters())

        def encode(pixels: torch.Tensor) -> torch.Tensor:
            # The same device, dtype and autocast as the training forward: same numbers.
            with ctx.autocast():
                return encoder(pixels.to(parameter.device, parameter.dtype))

        cache.fill(dataset.image_paths(), encode, encoder.preprocess)
    barrier()  # other ranks read what rank 0 wrote
    dataset.features = cache
    return cache
