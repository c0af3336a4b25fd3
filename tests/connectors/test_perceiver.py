from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from llava_kit.connectors.perceiver import PerceiverOptions, PerceiverResamplerConnector
from llava_kit.plugins.registry import build_registry

SMALL = PerceiverOptions(depth=2, heads=2, dim_head=3, num_latents=4, ff_mult=2)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _features(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def expected_parameters(o: PerceiverOptions, d_v: int, d_l: int) -> int:
    """The formula stated in llava_kit/connectors/perceiver.py's docstring."""
    inner = o.heads * o.dim_head
    return (
        o.num_latents * d_v
        + o.depth * (4 * d_v + 4 * d_v * inner)
        + o.depth * (2 * d_v + 2 * o.ff_mult * d_v * d_v)
        + 2 * d_v
        + d_v * d_l + d_l
    )


def test_flamingo_sized_resampler_parameter_count() -> None:
    with torch.device("meta"):
        connector = PerceiverResamplerConnector(PerceiverOptions(), 1024, 4096)
    # 64*1024 latents + 6 layers of (4*1024 + 4*1024*512 + 2*1024 + 8*1024^2) + 2*1024
    # + the projection 1024*4096 + 4096.
    assert _count(connector) == 65_536 + 6 * 10_491_904 + 2_048 + 4_198_400
    assert _count(connector) == expected_parameters(PerceiverOptions(), 1024, 4096)


@pytest.mark.parametrize(
    "update", [{}, {"depth": 1}, {"heads": 3, "dim_head": 5}, {"ff_mult": 1, "num_latents": 7}]
)
def test_parameter_count_formula(update: dict) -> None:
    options = SMALL.model_copy(update=update)
    connector = PerceiverResamplerConnector(options, 6, 10)
    assert _count(connector) == expected_parameters(options, 6, 10)


def test_shapes_and_token_count() -> None:
    connector = PerceiverResamplerConnector(SMALL, 6, 10)
    assert connector(_features(3, 9, 6)).shape == (3, 4, 10)
    assert connector(_features(2, 1, 6)).shape == (2, 4, 10)
    assert connector.num_visual_tokens(256) == 4
    assert connector.family == "tokens"
    assert PerceiverResamplerConnector(PerceiverOptions(), 8, 8).num_visual_tokens(256) == 64


def _layer_norm(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, norm.eps)


def test_one_layer_matches_a_hand_written_reference() -> None:
    """Latents attend to concat(media, latents), pre-LN, residual, then the FF and projection."""
    torch.manual_seed(0)
    options = SMALL.model_copy(update={"depth": 1})
    connector = PerceiverResamplerConnector(options, 6, 10)
    for parameter in connector.parameters():  # LayerNorms away from identity
        nn.init.normal_(parameter, std=0.5)
    media = _features(2, 9, 6)
    layer = connector.layers[0]
    attn, ff = layer.attn, layer.ff

    latents = connector.latents.expand(2, -1, -1)
    x = _layer_norm(media, attn.norm_media)
    lat = _layer_norm(latents, attn.norm_latents)
    inner = options.heads * options.dim_head
    kv_input = torch.cat([x, lat], dim=1)  # [2, 9 + 4, 6]: media first, then the latents
    q = lat @ attn.to_q.weight.T
    k = kv_input @ attn.to_kv.weight[:inner].T
    v = kv_input @ attn.to_kv.weight[inner:].T
    heads = []
    for h in range(options.heads):
        part = slice(h * options.dim_head, (h + 1) * options.dim_head)
        scores = q[..., part] @ k[..., part].transpose(1, 2) / options.dim_head**0.5
        assert scores.shape == (2, 4, 13)
        heads.append(scores.softmax(-1) @ v[..., part])
    latents = latents + torch.cat(heads, dim=-1) @ attn.to_out.weight.T
    hidden = F.gelu(_layer_norm(latents, ff[0]) @ ff[1].weight.T)
    latents = latents + hidden @ ff[3].weight.T
    out = _layer_norm(latents, connector.norm) @ connector.proj.weight.T + connector.proj.bias

    assert torch.allclose(connector(media), out, atol=1e-5)


def test_latents_are_part_of_the_keys_and_values() -> None:
    """Attending to the media alone would give another result: the latents are keys too."""
    torch.manual_seed(0)
    connector = PerceiverResamplerConnector(SMALL.model_copy(update={"depth": 1}), 6, 10)
    attn = connector.layers[0].attn
    media, latents = _features(1, 9, 6), connector.latents[None]
    full = attn(media, latents)
    x, lat = attn.norm_media(media), attn.norm_latents(latents)
    q = attn.to_q(lat).view(1, 4, 2, 3).transpose(1, 2)
    k, v = attn.to_kv(x).chunk(2, dim=-1)
    k, v = (t.view(1, 9, 2, 3).transpose(1, 2) for t in (k, v))
    media_only = attn.to_out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(1, 4, 6))
    assert not torch.allclose(full, media_only, atol=1e-4)


def test_output_is_invariant_to_the_order_of_media_tokens() -> None:
    torch.manual_seed(0)
    connector = PerceiverResamplerConnector(SMALL, 6, 10)
    media = _features(2, 9, 6)
    permuted = media[:, torch.randperm(9, generator=torch.Generator().manual_seed(1))]
    assert not torch.equal(media, permuted)
    assert torch.allclose(connector(media), connector(permuted), atol=1e-5)
    other = _features(2, 9, 6, seed=3)
    assert not torch.allclose(connector(media), connector(other), atol=1e-3)


def test_gradients_reach_latents_and_every_layer() -> None:
    connector = PerceiverResamplerConnector(SMALL, 6, 10)
    connector(_features(2, 9, 6)).pow(2).sum().backward()
    missing = [n for n, p in connector.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert missing == []


def test_bf16_features_are_cast_to_the_connector_dtype() -> None:
    connector = PerceiverResamplerConnector(SMALL, 6, 10)
    features = _features(1, 4, 6)
    output = connector(features.to(torch.bfloat16))
    assert output.dtype == torch.float32
    assert torch.equal(output, connector(features.to(torch.bfloat16).float()))


@pytest.mark.parametrize("field", ["depth", "heads", "dim_head", "num_latents", "ff_mult"])
def test_sizes_below_one_are_rejected(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        PerceiverOptions(**{field: 0})


def test_registered_as_perceiver_resampler() -> None:
    entry = build_registry(entry_points=False).get("connector", "perceiver_resampler")
    assert entry.component is PerceiverResamplerConnector and entry.package == "llava-kit"
