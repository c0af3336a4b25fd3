"""Every built-in connector refuses features of the wrong width with one clear error."""

from __future__ import annotations

import pytest
import torch

from llava_kit.connectors.base import Connector
from llava_kit.errors import ModelError
from llava_kit.plugins.registry import build_registry

VISION_DIM, LLM_DIM = 6, 8
# Small options per connector, so that building each takes milliseconds.
SMALL = {
    "linear": {},
    "mlp2x_gelu": {},
    "mlp3x_gelu": {},
    "qformer": {"num_queries": 2, "num_layers": 1, "hidden_size": 8, "num_heads": 2,
                "intermediate_size": 8},
    "perceiver_resampler": {"depth": 1, "heads": 2, "dim_head": 3, "num_latents": 2, "ff_mult": 1},
    "gated_xattn": {"num_heads": 2, "dim_head": 3, "ff_mult": 1, "num_latents": 2,
                    "resampler_depth": 1},
}


def build(name: str) -> Connector:
    entry = build_registry(entry_points=False).get("connector", name)
    options = entry.component.Options(**{**entry.defaults_for(name), **SMALL[name]})
    return entry.component(options, VISION_DIM, LLM_DIM)


def test_every_builtin_connector_is_covered() -> None:
    registry = build_registry(entry_points=False)
    builtins = {name for name in registry.names("connector") if "{" not in name}
    assert builtins <= set(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_wrong_feature_width_names_both_widths_and_the_fix(name: str) -> None:
    connector = build(name)
    assert connector(torch.zeros(1, 4, VISION_DIM)).shape[-1] == LLM_DIM
    with pytest.raises(ModelError) as caught:
        connector(torch.zeros(1, 4, VISION_DIM + 1))
    assert caught.value.message == (
        f"{type(connector).__name__}: features have width 7 but the connector was built "
        "for vision width 6"
    )
    assert caught.value.hint == "rebuild the connector from the encoder actually in use (hidden_size)"


def test_fusion_media_of_the_wrong_width_are_refused_before_any_layout() -> None:
    connector = build("gated_xattn")
    positions = torch.tensor([[True, False]])
    with pytest.raises(ModelError, match="media have width 7 but the connector was built for vision width 6"):
        connector.set_media(torch.zeros(1, 4, VISION_DIM + 1), positions)
