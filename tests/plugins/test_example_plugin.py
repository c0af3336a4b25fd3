"""The example plugin package (plugins/llava-kit-connector-example), installed as CI does.

CI runs `pip install -e plugins/llava-kit-connector-example` before the tests; these tests
require it, so a missing install fails loudly instead of passing vacuously.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

from llava_kit.errors import RecipeError
from llava_kit.model.build import instantiate
from llava_kit.plugins.registry import ENTRY_POINT_GROUP
from llava_kit.recipes import load_recipe

PACKAGE = "llava-kit-connector-example"
RECIPE = Path(__file__).parents[2] / "recipes" / "demo" / "connectors_tiny.yaml"


def test_the_package_declares_its_entry_point_in_the_llava_kit_group() -> None:
    distribution = importlib.metadata.distribution(PACKAGE)
    points = [ep for ep in distribution.entry_points if ep.group == ENTRY_POINT_GROUP]
    assert [(ep.name, ep.value) for ep in points] == [
        ("avgpool2x2_mlp", "llava_kit_connector_example.plugin")
    ]


def test_plugins_command_lists_it_under_its_own_package() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llava_kit.cli", "plugins", "--json"],
        capture_output=True, text=True, check=True,
    )
    rows = json.loads(result.stdout)
    ours = [row for row in rows if row["package"] == PACKAGE]
    assert ours == [{
        "kind": "connector", "name": "avgpool2x2_mlp", "package": PACKAGE,
        "description": "2x2 average pooling of the patch grid (N/4 tokens), then an MLP to the LLM width.",
    }, {
        "kind": "data_format", "name": "qa_jsonl", "package": PACKAGE,
        "description": "Question-answer pairs, one JSON object per line, each with at most one image.",
    }, {
        "kind": "tracker", "name": "csv_metrics", "package": PACKAGE,
        "description": "Every metric point as a row (step, metric, value) of a CSV file in the run directory.",
    }]
    assert not [row for row in rows if "error" in row and row["package"] == PACKAGE]


def test_a_recipe_uses_it_by_name_with_its_options() -> None:
    recipe = load_recipe(RECIPE, ["model.connector.name=avgpool2x2_mlp", "model.connector.depth=3"])
    connector = recipe.model.connector
    assert connector.entry.package == PACKAGE and connector.options.depth == 3
    # The demo's 64 px CLIP with patch 8 has an 8x8 grid: 2x2 pooling leaves 16 tokens.
    assert instantiate(connector, 64, 128).num_visual_tokens(64) == 16
    with pytest.raises(RecipeError, match="model.connector.cls_token: must be one of 'drop' or 'keep'"):
        load_recipe(RECIPE, ["model.connector.name=avgpool2x2_mlp", "model.connector.cls_token=pool"])
