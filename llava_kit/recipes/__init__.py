"""Recipes: YAML run descriptions validated by pydantic, with ``extends`` and ``--set``."""

from llava_kit.recipes.component_spec import (
    ComponentSpec,
    ConnectorSpec,
    DataSpec,
    EncoderSpec,
    EvaluatorSpec,
    LLMSpec,
    TemplateSpec,
    TrackerSpec,
)
from llava_kit.recipes.deepspeed_presets import DEEPSPEED_PRESETS
from llava_kit.recipes.loader import load_recipe, recipe_to_yaml, resolve_raw, validate_recipe
from llava_kit.recipes.overrides import apply_overrides
from llava_kit.recipes.schema import (
    TRAINABLE_GROUPS,
    BatchSpec,
    DemoDataSpec,
    LoraSpec,
    ModelSpec,
    OptimizerSpec,
    Recipe,
    RuntimeSpec,
    StageSpec,
)

__all__ = [
    "DEEPSPEED_PRESETS",
    "TRAINABLE_GROUPS",
    "BatchSpec",
    "ComponentSpec",
    "ConnectorSpec",
    "DataSpec",
    "DemoDataSpec",
    "EncoderSpec",
    "EvaluatorSpec",
    "LLMSpec",
    "LoraSpec",
    "ModelSpec",
    "OptimizerSpec",
    "Recipe",
    "RuntimeSpec",
    "StageSpec",
    "TemplateSpec",
    "TrackerSpec",
    "apply_overrides",
    "load_recipe",
    "recipe_to_yaml",
    "resolve_raw",
    "validate_recipe",
]
