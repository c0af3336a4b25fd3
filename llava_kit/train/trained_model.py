"""Rebuilding a trained model from a run directory (for evaluation, chat and export)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from llava_kit.model.build import build_model
from llava_kit.model.vlm import LlavaModel
from llava_kit.train.checkpoint import load_checkpoint
from llava_kit.train.lora import apply_lora
from llava_kit.train.run_dir import RunDir
from llava_kit.train.stage_weights import load_stage_weights

if TYPE_CHECKING:
    from llava_kit.recipes.schema import Recipe, StageSpec


def load_trained_model(recipe: "Recipe", run_dir: Path) -> LlavaModel:
    """The recipe's model with every finished stage's weights applied in stage order.

    Frozen parts come from their original sources (pretrained weights or seeded configs),
    exactly as the run built them; each stage's checkpoint holds what it trained.
    """
    model = build_model(recipe.model)
    for name, stage in recipe.enabled_stages.items():
        stage_dir = RunDir(run_dir).stage(name)
        if not stage_dir.is_finished():
            break
        apply_finished_stage(model, stage, stage_dir.final)
    return model.eval()


def apply_finished_stage(model: LlavaModel, stage: "StageSpec", final: Path) -> None:
    """A finished stage's weights on ``model``: its LoRA adapters first, if it trained them,
    then its verified final checkpoint."""
    if stage.lora is not None:
        apply_lora(model, stage.lora)
    load_stage_weights(model, load_checkpoint(final).weights, final)
