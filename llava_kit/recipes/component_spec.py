"""Component specs: a registered component's name plus options checked by its own model.

In YAML a component is a bare name (``connector: linear``) or a mapping holding the name
under ``name`` (``format`` for data) next to that component's options. Resolution goes
through the plugin registry, so a third-party component's options are validated exactly
like a built-in's, and the error paths point into the recipe.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    InstanceOf,
    ModelWrapValidatorHandler,
    SerializationInfo,
    ValidationError,
    ValidationInfo,
    model_serializer,
    model_validator,
)

from llava_kit.components import Kind, Options
from llava_kit.errors import PluginError
from llava_kit.plugins.registry import ComponentEntry, Registry, get_registry
from llava_kit.recipes.problems import (
    describe_error,
    field_problem,
    problem_details,
    problems_error,
    show_value,
)

_RESOLVED_KEYS = {"name", "options", "entry"}


class ComponentSpec(BaseModel):
    """A resolved component: its ``name``, validated ``options`` and registry ``entry``."""

    kind: ClassVar[Kind]
    name_key: ClassVar[str] = "name"
    model_config = ConfigDict(extra="forbid")

    name: str
    options: InstanceOf[Options]
    entry: InstanceOf[ComponentEntry] = Field(repr=False)

    @model_validator(mode="wrap")
    @classmethod
    def _resolve(
        cls, data: Any, handler: ModelWrapValidatorHandler[ComponentSpec], info: ValidationInfo
    ) -> ComponentSpec:
        if isinstance(data, cls):
            return data
        if isinstance(data, Mapping) and set(data) == _RESOLVED_KEYS:
            return handler(data)  # already resolved, e.g. built in Python
        registry = _registry_from(info.context)
        name, given = cls._split(data, registry)
        name_loc = (cls.name_key,) if isinstance(data, Mapping) else ()
        try:
            entry = registry.get(cls.kind, name)
        except PluginError as exc:
            raise field_problem(name_loc, _one_line(exc), name) from None
        options = cls._validate_options(entry, name, given, name_loc)
        return handler({"name": name, "options": options, "entry": entry})

    @model_serializer(mode="plain")
    def _flat(self, info: SerializationInfo) -> dict[str, Any]:
        # The YAML shape, so that a dumped recipe loads back unchanged.
        return {self.name_key: self.name, **self.options.model_dump(mode=info.mode)}

    @classmethod
    def _split(cls, data: Any, registry: Registry) -> tuple[str, dict[str, Any]]:
        """``linear`` or ``{name: linear, **options}`` -> (name, options as given)."""
        if isinstance(data, str):
            return data, {}
        if not isinstance(data, Mapping):
            raise field_problem(
                (),
                f"must be a {cls.kind} name or a mapping with {cls.name_key!r} and its options, "
                f"got {show_value(data)}",
                data,
            )
        name = data.get(cls.name_key)
        if name is None:
            installed = ", ".join(registry.names(cls.kind)) or "none"
            raise field_problem(
                (cls.name_key,), f"required: the {cls.kind}'s name; installed: {installed}", data
            )
        if not isinstance(name, str):
            raise field_problem(
                (cls.name_key,), f"must be a {cls.kind} name, got {show_value(name)}", name
            )
        return name, {key: value for key, value in data.items() if key != cls.name_key}

    @classmethod
    def _validate_options(
        cls, entry: ComponentEntry, name: str, given: dict[str, Any], name_loc: tuple[str, ...]
    ) -> Options:
        options_model = getattr(entry.component, "Options", None)
        if not (isinstance(options_model, type) and issubclass(options_model, BaseModel)):
            raise field_problem(
                name_loc,
                f"{cls.kind} {name!r} from package {entry.package} declares no Options model; "
                "this is a bug in that plugin",
                name,
            )
        # A pattern name such as mlp3x_gelu fixes some options (depth=3): defaults that
        # the recipe may repeat but not contradict.
        implied = entry.defaults_for(name)
        details = [
            problem_details(
                (key,),
                f"{name!r} implies {key}={implied[key]!r} but the recipe sets {given[key]!r}; "
                f"change the name or remove {key}",
                given[key],
            )
            for key in implied
            if key in given and given[key] != implied[key]
        ]
        try:
            options = options_model.model_validate({**implied, **given})
        except ValidationError as exc:
            details += [
                problem_details(tuple(e["loc"]), describe_error(e, options_model), e.get("input"))
                for e in exc.errors()
            ]
        if details:
            raise problems_error(details)
        return options


class EncoderSpec(ComponentSpec):
    kind: ClassVar[Kind] = "encoder"


class ConnectorSpec(ComponentSpec):
    kind: ClassVar[Kind] = "connector"


class LLMSpec(ComponentSpec):
    kind: ClassVar[Kind] = "llm"


class TemplateSpec(ComponentSpec):
    kind: ClassVar[Kind] = "template"


class DataSpec(ComponentSpec):
    kind: ClassVar[Kind] = "data_format"
    name_key: ClassVar[str] = "format"


class EvaluatorSpec(ComponentSpec):
    kind: ClassVar[Kind] = "evaluator"


class TrackerSpec(ComponentSpec):
    kind: ClassVar[Kind] = "tracker"

    @classmethod
    def _validate_options(
        cls, entry: ComponentEntry, name: str, given: dict[str, Any], name_loc: tuple[str, ...]
    ) -> Options:
        from llava_kit.trackers.base import Tracker

        component = entry.component
        if not issubclass(component, Tracker):
            raise field_problem(
                name_loc,
                f"tracker {name!r} from package {entry.package} is not a llava_kit.trackers."
                "Tracker; this is a bug in that plugin",
                name,
            )
        # Refused here, at validate time, rather than when the run is hours in.
        missing = component.missing_modules()
        if missing:
            command = component.install or f"pip install {' '.join(missing)}"
            raise field_problem(
                name_loc,
                f"tracker {name!r} needs {', '.join(missing)}, which is not installed; "
                f"install it with: {command}",
                name,
            )
        return super()._validate_options(entry, name, given, name_loc)


def _registry_from(context: Any) -> Registry:
    if isinstance(context, Mapping) and context.get("registry") is not None:
        return context["registry"]
    return get_registry()


def _one_line(exc: PluginError) -> str:
    return f"{exc.message}; {exc.hint}" if exc.hint else exc.message
