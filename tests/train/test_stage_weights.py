"""Loading a stage's saved weights: exact names, exact shapes, nothing else touched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from llava_kit.errors import ModelError
from llava_kit.train.stage_weights import load_stage_weights


class _Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.connector = nn.Linear(2, 3)
        self.llm = nn.Linear(3, 3)


def test_a_subset_loads_by_name_and_leaves_the_rest_as_built() -> None:
    model = _Model()
    llm_before = model.llm.weight.detach().clone()
    load_stage_weights(model, {"connector.weight": torch.ones(3, 2)}, Path("final"))  # type: ignore[arg-type]
    assert torch.equal(model.connector.weight, torch.ones(3, 2))
    assert torch.equal(model.llm.weight, llm_before)


@pytest.mark.parametrize("weights, named", [
    ({"connector.weight": torch.ones(4, 2)}, "connector.weight: saved [4, 2], model [3, 2]"),
    ({"projector.weight": torch.ones(3, 2)}, "parameters this model does not have: projector.weight"),
])
def test_a_checkpoint_that_does_not_fit_is_refused_before_anything_loads(
    weights: dict[str, torch.Tensor], named: str
) -> None:
    model = _Model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ModelError) as raised:
        load_stage_weights(model, {"llm.bias": torch.zeros(3), **weights}, Path("final"))  # type: ignore[arg-type]
    assert named in raised.value.message and "recipe.resolved.yaml" in (raised.value.hint or "")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
