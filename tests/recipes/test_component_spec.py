"""Component specs: names resolved through the registry, options checked by each component's model."""

from __future__ import annotations

from typing import Any

import pytest

from llava_kit.components import NoOptions
from llava_kit.errors import RecipeError
from llava_kit.model.build import instantiate
from llava_kit.plugins.hookspecs import Register, hookimpl
from llava_kit.plugins.registry import Registry, build_registry
from llava_kit.recipes import ConnectorSpec, DataSpec, EncoderSpec, validate_recipe


def _connector(registry: Registry, value: Any) -> ConnectorSpec:
    return ConnectorSpec.model_validate(value, context={"registry": registry})


def _problems(registry: Registry, recipe: dict[str, Any]) -> list[str]:
    with pytest.raises(RecipeError) as info:
        validate_recipe(recipe, registry=registry)
    return [line.strip() for line in str(info.value).splitlines()[1:]]


def test_bare_name_gets_default_options(registry, toys) -> None:
    spec = _connector(registry, "toy_linear")

    assert spec.name == "toy_linear"
    assert spec.options == NoOptions()
    assert spec.entry.component is toys.linear
    assert spec.entry.package == "test-pkg"


def test_mapping_holds_name_and_options_of_the_components_own_model(registry, toys) -> None:
    spec = EncoderSpec.model_validate(
        {"name": "toy_clip", "path": "enc", "select_feature": "cls_patch"},
        context={"registry": registry},
    )

    assert isinstance(spec.options, toys.encoder.Options)
    assert spec.options.model_dump() == {"path": "enc", "select_layer": -2, "select_feature": "cls_patch"}


def test_data_spec_reads_its_name_from_format(registry) -> None:
    spec = DataSpec.model_validate({"format": "toy_captions", "path": "c.json"}, context={"registry": registry})

    assert (spec.name, spec.options.model_dump()) == ("toy_captions", {"path": "c.json", "image_root": None})
    assert spec.model_dump() == {"format": "toy_captions", "path": "c.json", "image_root": None}


@pytest.mark.parametrize(
    ("value", "depth"),
    [("toy_mlp3x_gelu", 3), ({"name": "toy_mlp3x_gelu", "depth": 3}, 3), ("toy_mlp12x_gelu", 12),
     ("toy_mlp2x_gelu", 2), ({"name": "toy_mlp2x_gelu", "depth": 5}, 5)],
)
def test_pattern_name_implies_options(registry, value: Any, depth: int) -> None:
    assert _connector(registry, value).options.model_dump() == {"depth": depth, "dropout": 0.0}


def test_recipe_may_not_contradict_a_pattern_name(registry, toy_recipe) -> None:
    toy_recipe["model"]["connector"] = {"name": "toy_mlp3x_gelu", "depth": 2}

    assert _problems(registry, toy_recipe) == [
        "<recipe>: model.connector.depth: 'toy_mlp3x_gelu' implies depth=3 but the recipe sets 2; "
        "change the name or remove depth"
    ]


def test_serialises_to_the_flat_yaml_shape(registry) -> None:
    spec = _connector(registry, {"name": "toy_mlp3x_gelu", "dropout": 0.5})

    assert spec.model_dump() == {"name": "toy_mlp3x_gelu", "depth": 3, "dropout": 0.5}
    assert _connector(registry, spec.model_dump()) == spec


def test_instantiate_passes_the_options_first(registry) -> None:
    class Recorder:
        def __init__(self, options: Any, *args: Any, **kwargs: Any) -> None:
            self.received = (options, args, kwargs)

    spec = _connector(registry, "toy_linear")
    spec = spec.model_copy(update={"entry": spec.entry.__class__(
        "connector", "toy_linear", Recorder, "test-pkg")})

    built = instantiate(spec, 1024, 64)

    assert built.received == (spec.options, (1024, 64), {})


@pytest.mark.parametrize(
    ("connector", "expected"),
    [
        pytest.param(
            "toy_mlp2x_gelo",
            "<recipe>: model.connector: unknown connector 'toy_mlp2x_gelo'; installed: ",
            id="unknown-bare",
        ),
        pytest.param(
            {"name": "toy_mlp2x_gelo", "depth": 2},
            "<recipe>: model.connector.name: unknown connector 'toy_mlp2x_gelo'; installed: ",
            id="unknown-in-mapping",
        ),
    ],
)
def test_unknown_name_lists_installed_and_suggests(registry, toy_recipe, connector, expected) -> None:
    toy_recipe["model"]["connector"] = connector

    [line] = _problems(registry, toy_recipe)

    assert line.startswith(expected)
    installed = line.split("; installed: ")[1].split("; ")[0].split(", ")
    assert {"toy_linear", "toy_mlp2x_gelu", "toy_mlp{N}x_gelu"} <= set(installed)
    assert line.endswith("; did you mean 'toy_mlp2x_gelu'?")


@pytest.mark.parametrize(
    ("connector", "expected"),
    [
        ({"depth": 3}, "<recipe>: model.connector.name: required: the connector's name; installed: "),
        ({"name": 3}, "<recipe>: model.connector.name: must be a connector name, got 3 (int)"),
        (3, "<recipe>: model.connector: must be a connector name or a mapping with 'name' and its "
            "options, got 3 (int)"),
        ({"name": "toy_mlp2x_gelu", "dept": 3}, "<recipe>: model.connector.dept: unknown key; did you mean 'depth'?"),
        ({"name": "toy_mlp2x_gelu", "depth": "deep"},
         "<recipe>: model.connector.depth: must be a valid integer, got 'deep'"),
        ({"name": "toy_mlp2x_gelu", "depth": 0},
         "<recipe>: model.connector.depth: must be greater than or equal to 1, got 0 (int)"),
        ({"name": "toy_linear", "depth": 3}, "<recipe>: model.connector.depth: unknown key"),
    ],
)
def test_bad_connector_specs(registry, toy_recipe, connector: Any, expected: str) -> None:
    toy_recipe["model"]["connector"] = connector

    [line] = _problems(registry, toy_recipe)

    assert line.startswith(expected)


def test_data_needs_format_not_name(registry, toy_recipe) -> None:
    toy_recipe["stages"]["pretrain"]["data"] = {"name": "toy_captions", "path": "c.json"}

    [line] = _problems(registry, toy_recipe)

    assert line.startswith("<recipe>: stages.pretrain.data.format: required: the data_format's name; installed: ")


def test_third_party_options_are_checked_like_built_ins(registry, toy_recipe) -> None:
    toy_recipe["model"]["encoder"] = {"name": "toy_clip", "path": "enc", "select_feature": "all", "selct_layer": 1}
    toy_recipe["eval"] = {"check": {"name": "toy_eval", "split": "tset"}}

    assert _problems(registry, toy_recipe) == [
        "<recipe>: model.encoder.select_feature: must be one of 'patch' or 'cls_patch', got 'all'",
        "<recipe>: model.encoder.selct_layer: unknown key; did you mean 'select_layer'?",
        "<recipe>: eval.check.split: must be one of 'val' or 'test', got 'tset'; did you mean 'test'?",
    ]


class _NoOptionsModel:
    """A component whose author forgot its Options model."""


class _BrokenPlugin:
    @staticmethod
    @hookimpl
    def register_connectors(register: Register) -> None:
        register("optionless", _NoOptionsModel)
        register("toy_linear", _NoOptionsModel)  # clashes with the toy plugin


def test_plugin_bugs_are_reported_at_the_field(toys, toy_recipe) -> None:
    registry = build_registry(
        entry_points=False, extra_plugins=[(toys.plugin, "test-pkg"), (_BrokenPlugin, "broken-pkg")]
    )
    toy_recipe["model"]["connector"] = "optionless"
    toy_recipe["stages"]["pretrain"]["template"] = "toy_plain"
    toy_recipe["eval"] = {"e": "toy_eval"}
    clash = dict(toy_recipe, model=dict(toy_recipe["model"], connector="toy_linear"))

    assert _problems(registry, toy_recipe) == [
        "<recipe>: model.connector: connector 'optionless' from package broken-pkg declares no "
        "Options model; this is a bug in that plugin"
    ]
    assert _problems(registry, clash) == [
        "<recipe>: model.connector: connector 'toy_linear' is registered by more than one package: "
        "test-pkg and broken-pkg; uninstall one of them, or ask its author to rename the component"
    ]
