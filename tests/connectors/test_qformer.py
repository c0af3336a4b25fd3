from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from llava_kit.connectors.qformer import QFormerConnector, QFormerOptions
from llava_kit.plugins.registry import build_registry

SMALL = QFormerOptions(
    num_queries=5, num_layers=3, hidden_size=16, num_heads=4, intermediate_size=24
)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _features(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def expected_parameters(o: QFormerOptions, d_v: int, d_l: int) -> int:
    """The formula stated in llava_kit/connectors/qformer.py's docstring."""
    h, inter, layers = o.hidden_size, o.intermediate_size, o.num_layers
    cross = math.ceil(layers / o.cross_attention_frequency)
    return (
        o.num_queries * h
        + 2 * h
        + layers * (4 * h * h + 6 * h)
        + cross * (2 * h * h + 2 * d_v * h + 6 * h)
        + layers * (2 * h * inter + inter + 3 * h)
        + h * d_l + d_l
    )


def test_blip2_sized_body_has_blip2s_parameter_count() -> None:
    options = QFormerOptions(num_layers=12, hidden_size=768, num_heads=12, intermediate_size=3072)
    with torch.device("meta"):
        connector = QFormerConnector(options, 1408, 4096)
    assert _count(connector.qformer) == 105_137_664
    assert _count(connector) == 105_137_664 + 32 * 768 + 768 * 4096 + 4096
    assert _count(connector) == expected_parameters(options, 1408, 4096)


@pytest.mark.parametrize(
    ("layers", "frequency", "d_v", "d_l"), [(1, 1, 8, 12), (3, 2, 20, 12), (4, 2, 8, 30), (5, 3, 8, 12)]
)
def test_parameter_count_formula(layers: int, frequency: int, d_v: int, d_l: int) -> None:
    options = SMALL.model_copy(update={"num_layers": layers, "cross_attention_frequency": frequency})
    connector = QFormerConnector(options, d_v, d_l)
    assert _count(connector) == expected_parameters(options, d_v, d_l)


@pytest.mark.parametrize(("layers", "frequency", "cross"), [(6, 2, [0, 2, 4]), (7, 3, [0, 3, 6]), (3, 1, [0, 1, 2])])
def test_cross_attention_sits_in_every_frequency_th_layer(
    layers: int, frequency: int, cross: list[int]
) -> None:
    options = SMALL.model_copy(update={"num_layers": layers, "cross_attention_frequency": frequency})
    connector = QFormerConnector(options, 8, 12)
    stack = connector.qformer.encoder.layer
    assert [i for i, layer in enumerate(stack) if layer.has_cross_attention] == cross
    assert [i for i, layer in enumerate(stack) if hasattr(layer, "crossattention")] == cross
    # The keys and values of a cross-attention read the vision width.
    assert stack[0].crossattention.attention.key.in_features == 8


def test_shapes_and_token_count() -> None:
    connector = QFormerConnector(SMALL, 8, 12)
    assert connector(_features(3, 10, 8)).shape == (3, 5, 12)
    assert connector(_features(1, 49, 8)).shape == (1, 5, 12)
    assert connector.num_visual_tokens(576) == 5 and connector.num_visual_tokens(1) == 5
    assert connector.family == "tokens"


def test_defaults_are_small_and_follow_blip2s_query_count() -> None:
    defaults = QFormerOptions()
    assert defaults.num_queries == 32 and defaults.cross_attention_frequency == 2
    assert QFormerConnector(defaults, 64, 128).num_visual_tokens(64) == 32


def test_queries_are_drawn_from_normal_0_002() -> None:
    torch.manual_seed(0)
    options = SMALL.model_copy(update={"num_queries": 64, "hidden_size": 128, "intermediate_size": 8})
    queries = QFormerConnector(options, 8, 12).queries
    assert queries.shape == (1, 64, 128)
    assert abs(queries.mean().item()) < 0.002
    assert queries.std().item() == pytest.approx(0.02, rel=0.05)


def test_output_depends_on_the_image_features() -> None:
    torch.manual_seed(0)
    connector = QFormerConnector(SMALL, 8, 12).eval()
    a, b = _features(1, 10, 8, seed=1), _features(1, 10, 8, seed=2)
    assert not torch.allclose(connector(a), connector(b), atol=1e-4)
    features = a.clone().requires_grad_(True)
    connector(features).sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0


def test_each_image_is_resampled_on_its_own() -> None:
    torch.manual_seed(0)
    connector = QFormerConnector(SMALL, 8, 12).eval()
    batch = _features(3, 10, 8)
    together = connector(batch)
    for i in range(3):
        assert torch.allclose(together[i : i + 1], connector(batch[i : i + 1]), atol=1e-5)


def test_gradients_reach_queries_and_every_layer() -> None:
    connector = QFormerConnector(SMALL, 8, 12)
    connector(_features(2, 10, 8)).pow(2).sum().backward()
    missing = [n for n, p in connector.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert missing == []


def test_bf16_features_are_cast_to_the_connector_dtype() -> None:
    connector = QFormerConnector(SMALL, 8, 12).eval()
    features = _features(1, 4, 8)
    output = connector(features.to(torch.bfloat16))
    assert output.dtype == torch.float32
    assert torch.equal(output, connector(features.to(torch.bfloat16).float()))


@pytest.mark.parametrize(
    ("update", "field"),
    [({"num_heads": 5}, "not a multiple of num_heads 5"), ({"num_queries": 0}, "num_queries"),
     ({"cross_attention_frequency": 0}, "cross_attention_frequency"), ({"queries": 3}, "queries")],
)
def test_bad_options_are_rejected(update: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        QFormerOptions(**{**SMALL.model_dump(), **update})


def test_registered_as_qformer() -> None:
    entry = build_registry(entry_points=False).get("connector", "qformer")
    assert entry.component is QFormerConnector and entry.package == "llava-kit"
