"""Hook specifications: one hook per component kind.

A plugin implements any of these hooks and calls ``register(name, component)`` for each
component it provides. Built-ins use exactly the same hooks as third-party packages.
``register`` also accepts ``pattern=`` (a regular expression with named groups) for a
family of names such as ``mlp{N}x_gelu``; the groups become default options.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import pluggy

PROJECT = "llava_kit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Register(Protocol):
    def __call__(
        self, name: str, component: type, *, pattern: str | None = None
    ) -> None: ...


@hookspec
def register_encoders(register: Register) -> None:
    """Register vision encoders (subclasses of llava_kit.encoders.VisionEncoder)."""


@hookspec
def register_connectors(register: Register) -> None:
    """Register connectors (subclasses of llava_kit.connectors.Connector)."""


@hookspec
def register_llms(register: Register) -> None:
    """Register language-model loaders (subclasses of llava_kit.llms.LanguageModel)."""


@hookspec
def register_data_formats(register: Register) -> None:
    """Register dataset readers (subclasses of llava_kit.data.DataFormat)."""


@hookspec
def register_templates(register: Register) -> None:
    """Register chat templates (subclasses of llava_kit.templates.ChatTemplate)."""


@hookspec
def register_evaluators(register: Register) -> None:
    """Register evaluators (subclasses of llava_kit.evaluators.Evaluator)."""


@hookspec
def register_trackers(register: Register) -> None:
    """Register experiment trackers (subclasses of llava_kit.trackers.Tracker)."""


HOOK_KINDS: dict[str, str] = {
    "register_encoders": "encoder",
    "register_connectors": "connector",
    "register_llms": "llm",
    "register_data_formats": "data_format",
    "register_templates": "template",
    "register_evaluators": "evaluator",
    "register_trackers": "tracker",
}

RegisterFn = Callable[..., Any]
