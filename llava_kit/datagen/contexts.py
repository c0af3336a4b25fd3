"""Symbolic image contexts: a few captions and labelled boxes with normalised corners.

One record per image (JSON list, or JSONL with the ``.jsonl`` extension), in the layout of
LLaVA-Bench's caption-and-box files::

    {"id": "000000441147", "image": "000000441147.jpg",
     "captions": ["Two suitcases on a bed.", ...],
     "instances": [{"category": "suitcase", "bbox": [0.12, 0.30, 0.55, 0.81]}, ...]}

``bbox`` is ``[x1, y1, x2, y2]`` as fractions of the image width and height.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llava_kit.data.formats.problems import Problems
from llava_kit.data.formats.records import read_records, record_id
from llava_kit.errors import DataError

LAYOUT_HINT = (
    'each record needs "id", "image", "captions" (non-empty list of strings) and "instances" '
    '(list of {"category": str, "bbox": [x1, y1, x2, y2]} with 0 <= x1 <= x2 <= 1, same for y)'
)


@dataclass(frozen=True)
class Box:
    category: str
    bbox: tuple[float, float, float, float]


@dataclass(frozen=True)
class ImageContext:
    id: str
    image: str
    captions: tuple[str, ...]
    boxes: tuple[Box, ...]

    def render(self) -> str:
        """The text a text-only model sees for this image: captions, a blank line, boxes."""
        lines = list(self.captions)
        if self.boxes:
            lines.append("")
            lines.extend(
                f"{box.category}: [{', '.join(f'{v:.3f}' for v in box.bbox)}]" for box in self.boxes
            )
        return "\n".join(lines)


def read_contexts(path: Path) -> list[ImageContext]:
    """Every context in the file, checked; all problems are reported together."""
    problems = Problems(Path(path))
    contexts: list[ImageContext] = []
    seen: set[str] = set()
    for where, record in read_records(Path(path), None):
        if not isinstance(record, dict):
            problems.add(where, f"expected a JSON object, found a {type(record).__name__}")
            continue
        context_id = record_id(record, where, problems)
        if context_id is None:
            continue
        where = f"context {context_id!r} ({where})"
        if context_id in seen:
            problems.add(where, "the id appears more than once; ids name the generated samples")
            continue
        seen.add(context_id)
        context = _parse(record, context_id, where, problems)
        if context is not None:
            contexts.append(context)
    try:
        problems.raise_if_any()
    except DataError as exc:
        raise DataError(exc.message, hint=LAYOUT_HINT) from None
    return contexts


def _parse(
    record: dict[str, Any], context_id: str, where: str, problems: Problems
) -> ImageContext | None:
    image = record.get("image")
    captions = record.get("captions")
    instances = record.get("instances", [])
    if not isinstance(image, str) or not image:
        problems.add(where, "'image' must be a non-empty file name")
        return None
    if (
        not isinstance(captions, list)
        or not captions
        or not all(isinstance(c, str) and c.strip() for c in captions)
    ):
        problems.add(where, "'captions' must be a non-empty list of non-empty strings")
        return None
    if not isinstance(instances, list):
        problems.add(where, "'instances' must be a list")
        return None
    boxes: list[Box] = []
    for index, instance in enumerate(instances):
        box = _box(instance)
        if box is None:
            problems.add(where, f"instances[{index}] is not a valid box: {instance!r}")
            return None
        boxes.append(box)
    return ImageContext(context_id, image, tuple(c.strip() for c in captions), tuple(boxes))


def _box(instance: Any) -> Box | None:
    if not isinstance(instance, dict):
        return None
    category, bbox = instance.get("category"), instance.get("bbox")
    if not isinstance(category, str) or not category.strip():
        return None
    if not isinstance(bbox, list) or len(bbox) != 4:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
        return None
    x1, y1, x2, y2 = (float(v) for v in bbox)
    if not (0.0 <= x1 <= x2 <= 1.0 and 0.0 <= y1 <= y2 <= 1.0):
        return None
    return Box(category.strip(), (x1, y1, x2, y2))
