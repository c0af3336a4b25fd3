"""``llava-kit validate``: check a recipe without loading weights or reading data."""

from __future__ import annotations

from pathlib import Path

import typer

from llava_kit.recipes import Recipe, load_recipe


def validate(
    recipe: Path = typer.Argument(..., help="The recipe YAML file.", show_default=False),
    overrides: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE",
        help="Override a field, e.g. --set stages.finetune.epochs=3 (repeatable).",
    ),
) -> None:
    """Check a recipe: YAML, extends, fields, component names and their options."""
    loaded = load_recipe(recipe, overrides)
    typer.echo("\n".join(summary_lines(loaded)))
    typer.echo("ok")


def summary_lines(recipe: Recipe) -> list[str]:
    """A few lines saying what the recipe builds and trains."""
    model = recipe.model
    width = max(len(name) for name in ("connector", *recipe.stages, *recipe.eval)) + 1
    lines = [f"recipe {recipe.name}"]
    lines += [
        f"  {role:<{width}} {spec.name}"
        for role, spec in (
            ("encoder", model.encoder), ("connector", model.connector),
            ("llm", model.llm), ("template", model.template),
        )
    ]
    lines.append("stages")
    for name, stage in recipe.stages.items():
        if not stage.enabled:
            lines.append(f"  {name:<{width}} disabled")
            continue
        template = stage.template.name if stage.template else model.template.name
        lora = f" (LoRA r={stage.lora.r})" if stage.lora else ""
        lines.append(
            f"  {name:<{width}} trains {', '.join(stage.trainable)}{lora}; data {stage.data.name}, "
            f"template {template}, {stage.epochs:g} epoch(s), batch {stage.batch.global_size}, "
            f"lr {stage.optimizer.lr:g}"
        )
    if recipe.eval:
        lines.append("eval")
        lines += [f"  {name:<{width}} {spec.name}" for name, spec in recipe.eval.items()]
    if recipe.runtime.trackers:
        lines.append(f"trackers {', '.join(spec.name for spec in recipe.runtime.trackers)}")
    return lines


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
