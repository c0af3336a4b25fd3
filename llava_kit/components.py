"""What every pluggable component shares: a name, a kind and a validated options model."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

Kind = Literal[
    "encoder", "connector", "llm", "data_format", "template", "evaluator", "tracker"
]
KINDS: tuple[Kind, ...] = get_args(Kind)


# Upper bounds for the size knobs of built-in components. A recipe or a pattern name is
# untrusted input: ``mlp100000000x_gelu`` must fail validation, not allocate until the
# machine runs out of memory. The bounds sit far above any published model.
MAX_LAYERS = 256
MAX_HEADS = 1024
MAX_WIDTH = 1 << 17
MAX_TOKENS = 1 << 14
MAX_MULTIPLIER = 64


class Options(BaseModel):
    """Base for every component's recipe options: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)


class NoOptions(Options):
    """For components that take no options."""


def describe(component: type) -> str:
    """The first line of a component's docstring: its one-line description."""
    doc = (component.__doc__ or "").strip()
    return doc.splitlines()[0].strip() if doc else ""
