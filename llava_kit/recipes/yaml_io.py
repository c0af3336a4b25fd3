"""Reading recipe YAML safely, with errors that name the file, line and column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llava_kit.errors import RecipeError


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, except that a key repeated in one mapping is an error.

    Plain YAML keeps the last duplicate silently; in a recipe that hides a whole stage.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # "<<:" merges are allowed to repeat keys
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen_at = first_line.get(key)
            except TypeError:  # unhashable key: the base loader reports it
                continue
            if seen_at is not None:
                raise yaml.constructor.ConstructorError(
                    None, None,
                    f"key {key!r} appears twice in the same mapping (first on line {seen_at})",
                    key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


# Recipes and grid files are a few hundred values; these bounds are far above that and far
# below what would exhaust memory. Aliases are counted as expanded: a few lines of nested
# anchors (a "billion laughs") describe billions of values.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_VALUES = 100_000


def parse_yaml(text: str, label: str) -> Any:
    """YAML text -> plain Python data; ``label`` names the text in errors."""
    if len(text) > MAX_YAML_BYTES:
        raise RecipeError(f"{label}: {len(text):,} characters; a recipe may have at most "
                          f"{MAX_YAML_BYTES:,}")
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node, label)
        return fresh_copy(loader.construct_document(node))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise RecipeError(f"{label}: {where}invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{label}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def _check_expanded_size(root: yaml.Node, label: str) -> None:
    """Refuses a document whose aliases expand past MAX_YAML_VALUES values, or into themselves."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise RecipeError(f"{label}: line {node.start_mark.line + 1}: an alias refers to a "
                              "value that contains it; recipes cannot be recursive")
        open_nodes.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_YAML_VALUES:
                raise RecipeError(
                    f"{label}: more than {MAX_YAML_VALUES:,} values once its aliases are "
                    "expanded; is an anchor repeated inside itself?",
                    hint="a recipe needs a few hundred values; write the repeated part once",
                )
        open_nodes.discard(key)
        sizes[key] = total
        return total

    size(root)


def read_mapping(path: Path, label: str) -> dict[str, Any]:
    """A YAML file whose top level is a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{label}: file not found") from None
    except UnicodeDecodeError:
        raise RecipeError(f"{label}: not UTF-8 text; is this a YAML recipe?") from None
    except OSError as exc:
        raise RecipeError(f"{label}: cannot read: {exc.strerror or exc}") from None
    data = parse_yaml(text, label)
    if data is None:
        raise RecipeError(
            f"{label}: the file is empty; a recipe is a mapping (name, model, stages, ...)"
        )
    if not isinstance(data, dict):
        raise RecipeError(
            f"{label}: the top level must be a mapping (name, model, stages, ...), "
            f"got a {type(data).__name__}"
        )
    return data


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)


def fresh_copy(value: Any) -> Any:
    """New dicts and lists all the way down: YAML anchors share objects, overrides edit in place."""
    if isinstance(value, dict):
        return {key: fresh_copy(child) for key, child in value.items()}
    if isinstance(value, list):
        return [fresh_copy(child) for child in value]
    return value
