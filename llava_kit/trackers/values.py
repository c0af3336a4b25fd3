"""What trackers are given besides the step points: the run's results as named numbers, and
its recipe as flat settings (for tools whose parameters are one level deep)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from llava_kit.train.report import StageSummary


def summary_values(
    stages: Sequence[StageSummary], evaluations: dict[str, dict[str, float]]
) -> dict[str, float]:
    """``summary/<stage>/<field>`` of each stage and ``eval/<evaluation>/<metric>``."""
    values: dict[str, float] = {}
    for stage in stages:
        for key, value in dataclasses.asdict(stage).items():
            if _is_number(value):
                values[f"summary/{stage.name}/{key}"] = float(value)
    for name, metrics in evaluations.items():
        for metric, value in metrics.items():
            if _is_number(value):
                values[f"eval/{name}/{metric}"] = float(value)
    return values


def flat_settings(config: dict[str, Any], prefix: str = "") -> dict[str, str | int | float | bool]:
    """``{"stages": {"pretrain": {"epochs": 1}}}`` -> ``{"stages.pretrain.epochs": 1}``;
    lists and nulls become their JSON text."""
    flat: dict[str, str | int | float | bool] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flat_settings(value, f"{path}."))
        elif isinstance(value, (str, int, float, bool)):
            flat[path] = value
        else:
            flat[path] = json.dumps(value)
    return flat


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
