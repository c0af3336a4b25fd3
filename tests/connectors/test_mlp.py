from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from llava_kit.components import NoOptions
from llava_kit.connectors.mlp import LinearConnector, MLPConnector, MLPOptions
from llava_kit.plugins.registry import build_registry


def _parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _features(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def test_linear_parameter_count_matches_the_paper() -> None:
    with torch.device("meta"):
        connector = LinearConnector(NoOptions(), 1024, 5120)
    assert _parameter_count(connector) == 5_248_000


def test_mlp2x_parameter_count_matches_llava_15() -> None:
    with torch.device("meta"):
        connector = MLPConnector(MLPOptions(), 1024, 4096)
    assert _parameter_count(connector) == 20_979_712


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_mlp_parameter_count_formula(depth: int) -> None:
    with torch.device("meta"):
        connector = MLPConnector(MLPOptions(depth=depth), 1024, 4096)
    expected = 1024 * 4096 + 4096 + (depth - 1) * (4096 * 4096 + 4096)
    assert _parameter_count(connector) == expected


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_mlp_structure(depth: int) -> None:
    connector = MLPConnector(MLPOptions(depth=depth), 6, 10)
    layers = list(connector.proj)
    assert len(layers) == 2 * depth - 1
    assert [type(layer) for layer in layers] == [nn.Linear, nn.GELU] * (depth - 1) + [nn.Linear]
    assert (layers[0].in_features, layers[0].out_features) == (6, 10)
    assert all((layer.in_features, layer.out_features) == (10, 10) for layer in layers[2::2])
    assert all(layer.approximate == "none" for layer in layers[1::2])


def test_state_dict_keys_follow_the_reference_mm_projector() -> None:
    linear = LinearConnector(NoOptions(), 6, 10)
    assert set(linear.state_dict()) == {"proj.weight", "proj.bias"}
    mlp = MLPConnector(MLPOptions(), 6, 10)
    assert set(mlp.state_dict()) == {"proj.0.weight", "proj.0.bias", "proj.2.weight", "proj.2.bias"}


def test_reference_mlp2x_checkpoint_loads_by_renaming_the_prefix() -> None:
    torch.manual_seed(0)
    # The reference builds mm_projector as Sequential(Linear, GELU, Linear).
    reference = nn.Sequential(nn.Linear(6, 10), nn.GELU(), nn.Linear(10, 10))
    checkpoint = {f"model.mm_projector.{k}": v for k, v in reference.state_dict().items()}
    connector = MLPConnector(MLPOptions(), 6, 10)
    connector.load_state_dict(
        {k.replace("model.mm_projector.", "proj."): v for k, v in checkpoint.items()}, strict=True
    )
    features = _features(2, 5, 6)
    assert torch.equal(connector(features), reference(features))


def test_mlp_output_is_linear_gelu_linear() -> None:
    connector = MLPConnector(MLPOptions(), 6, 10)
    features = _features(2, 5, 6)
    first, second = connector.proj[0], connector.proj[2]
    hidden = features @ first.weight.T + first.bias
    hidden = 0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2)))  # exact (erf) GELU
    expected = hidden @ second.weight.T + second.bias
    assert torch.allclose(connector(features), expected, atol=1e-6)


def test_linear_output_is_one_affine_map() -> None:
    connector = LinearConnector(NoOptions(), 6, 10)
    features = _features(3, 4, 6)
    expected = features @ connector.proj.weight.T + connector.proj.bias
    assert torch.allclose(connector(features), expected, atol=1e-6)


@pytest.mark.parametrize(
    "connector", [LinearConnector(NoOptions(), 8, 12), MLPConnector(MLPOptions(depth=3), 8, 12)]
)
def test_one_token_per_patch(connector) -> None:
    assert connector(_features(2, 7, 8)).shape == (2, 7, 12)
    assert connector.num_visual_tokens(576) == 576
    assert connector.family == "tokens"


def test_mlp1x_gelu_equals_linear() -> None:
    linear = LinearConnector(NoOptions(), 6, 10)
    mlp1 = MLPConnector(MLPOptions(depth=1), 6, 10)
    mlp1.proj[0].load_state_dict(linear.proj.state_dict())
    features = _features(2, 5, 6)
    assert torch.equal(mlp1(features), linear(features))


def test_depth_below_one_is_rejected() -> None:
    with pytest.raises(ValidationError, match="depth"):
        MLPOptions(depth=0)


def test_features_in_another_dtype_are_cast() -> None:
    connector = MLPConnector(MLPOptions(), 6, 10)
    features = _features(1, 3, 6)
    output = connector(features.to(torch.bfloat16))
    assert output.dtype == torch.float32
    assert torch.equal(output, connector(features.to(torch.bfloat16).float()))


def test_gradients_reach_every_layer() -> None:
    connector = MLPConnector(MLPOptions(depth=3), 6, 10)
    connector(_features(2, 3, 6)).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in connector.parameters())


def test_registry_names() -> None:
    registry = build_registry(entry_points=False)
    assert registry.get("connector", "linear").component is LinearConnector
    exact = registry.get("connector", "mlp2x_gelu")
    assert exact.component is MLPConnector and exact.defaults_for("mlp2x_gelu") == {}
    family = registry.get("connector", "mlp3x_gelu")
    assert family.component is MLPConnector
    defaults = family.defaults_for("mlp3x_gelu")
    assert defaults == {"depth": 3}
    connector = family.component(family.component.Options(**defaults), 6, 10)
    assert len(connector.proj) == 5
