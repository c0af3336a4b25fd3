"""The LLaVA conversation file format (LLaVA-Instruct-158K, mix-665K, ScienceQA conversions).

Each record looks like::

    {"id": "000000033471", "image": "000000033471.jpg",
     "conversations": [{"from": "human", "value": "<image>\\nWhat is ...?"},
                       {"from": "gpt", "value": "The ..."}, ...]}

``image`` is optional (text-only samples) and may be a list for several images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from llava_kit.components import Options
from llava_kit.constants import IMAGE_PLACEHOLDER
from llava_kit.data.formats.base import DataFormat
from llava_kit.data.formats.conversations import ROLE_ALIASES, conversation_unknown_fields
from llava_kit.data.formats.fields import UnknownField
from llava_kit.data.formats.image_paths import ImageResolver, image_root_dir
from llava_kit.data.formats.problems import Problems
from llava_kit.data.formats.records import gc_paused, read_records, record_header
from llava_kit.data.sample import Sample
from llava_kit.templates.base import Message, Role

RECORD_FIELDS = frozenset({"id", "image", "conversations"})


class LlavaJSONOptions(Options):
    path: str
    image_root: str | None = None
    limit: int | None = Field(default=None, ge=1)


class LlavaJSONFormat(DataFormat):
    """LLaVA conversation files (JSON list or JSONL): human/gpt turns, optional images.

    When a sample has images but its human turns contain no ``<image>`` marker, one
    ``<image>\\n`` per image is put at the start of the first human turn: where the
    reference's preprocessing moves a marker (start of the turn, then a newline) and where
    its evaluation scripts prepend one. Markers already in the text stay where they are.
    Any other mismatch between markers and images is an error. All problems in the file
    are reported together.
    """

    Options = LlavaJSONOptions

    def load(self) -> list[Sample]:
        options: LlavaJSONOptions = self.options  # type: ignore[assignment]
        source = Path(options.path)
        resolver = (
            ImageResolver(image_root_dir(options.image_root))
            if options.image_root is not None
            else None
        )
        problems = Problems(source)
        without_root: list[str] = []
        samples: list[Sample] = []
        with gc_paused():
            for where, record in read_records(source, options.limit):
                sample = self._parse(record, where, resolver, problems, without_root)
                if sample is not None:
                    samples.append(sample)
        if without_root:
            problems.add(
                without_root[0],
                f"has images but the data format option 'image_root' is not set "
                f"({len(without_root)} such samples); set it to the folder the image paths "
                "are relative to",
            )
        problems.raise_if_any()
        return samples

    def source_files(self) -> list[Path]:
        options: LlavaJSONOptions = self.options  # type: ignore[assignment]
        return [Path(options.path)]

    def unknown_fields(self) -> list[UnknownField]:
        options: LlavaJSONOptions = self.options  # type: ignore[assignment]
        return conversation_unknown_fields(Path(options.path), options.limit, RECORD_FIELDS)

    def _parse(
        self,
        record: Any,
        where: str,
        resolver: ImageResolver | None,
        problems: Problems,
        without_root: list[str],
    ) -> Sample | None:
        header = record_header(record, where, problems)
        if header is None:
            return None
        origin = where  # the record's place in the file; `where` becomes its label
        sample_id, where = header
        before = len(problems)

        relative = _image_list(record.get("image"), where, problems)
        turns = _conversation(record.get("conversations"), where, problems)
        if turns is None or relative is None:
            return None
        turns = _match_image_markers(turns, len(relative), where, problems)
        images: list[Path] = []
        if relative:
            if resolver is None:
                without_root.append(where)
                return None
            images = resolver.resolve(relative, where, problems)
        if len(problems) > before:
            return None
        messages = [Message(role=role, content=text) for role, text in turns]
        return Sample(id=sample_id, messages=messages, images=images, origin=origin)


def _image_list(raw: Any, where: str, problems: Problems) -> list[str] | None:
    """The record's image paths: none, one, or a list; None after a problem."""
    if raw is None:
        return []
    paths = [raw] if isinstance(raw, str) else raw
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        problems.add(where, "'image' must be a non-empty path string or a list of them")
        return None
    return paths


def _conversation(raw: Any, where: str, problems: Problems) -> list[tuple[Role, str]] | None:
    """(role, text) turns checked for shape, known roles, human first and alternation."""
    if not isinstance(raw, list) or not raw:
        problems.add(where, "'conversations' must be a non-empty list of turns")
        return None
    turns: list[tuple[Role, str]] = []
    for index, turn in enumerate(raw):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            problems.add(where, f"turn {index} must be an object with 'from' and a string 'value'")
            return None
        speaker = turn.get("from")
        role = ROLE_ALIASES.get(speaker) if isinstance(speaker, str) else None
        if role is None:
            problems.add(
                where,
                f"turn {index} has unknown role {speaker!r}; use one of {', '.join(ROLE_ALIASES)}",
            )
            return None
        turns.append((role, turn["value"]))
    if turns[0][0] != "user":
        problems.add(where, "the first turn must be from 'human'")
        return None
    for index in range(1, len(turns)):
        if turns[index][0] == turns[index - 1][0]:
            problems.add(
                where, f"turns {index - 1} and {index} are both from the same role; "
                "human and gpt turns must alternate",
            )
            return None
    if turns[-1][0] != "assistant":
        problems.add(
            where, "the last turn is from 'human' and has no gpt answer to train on", "no_answer"
        )
        return None
    return turns


def _match_image_markers(
    turns: list[tuple[Role, str]], image_count: int, where: str, problems: Problems
) -> list[tuple[Role, str]]:
    """Check that ``<image>`` markers match the images, adding them when there are none."""
    in_answers = sum(text.count(IMAGE_PLACEHOLDER) for role, text in turns if role == "assistant")
    if in_answers:
        problems.add(
            where, f"{IMAGE_PLACEHOLDER} appears in a gpt turn; images go in human turns",
            "image_markers",
        )
        return turns
    markers = sum(text.count(IMAGE_PLACEHOLDER) for role, text in turns if role == "user")
    if image_count and not markers:
        first_role, first_text = turns[0]
        prefix = f"{IMAGE_PLACEHOLDER}\n" * image_count
        return [(first_role, prefix + first_text), *turns[1:]]
    if markers != image_count:
        problems.add(
            where,
            f"{markers} {IMAGE_PLACEHOLDER} marker(s) in the human turns but {image_count} "
            "image(s); each image needs exactly one marker",
            "image_markers",
        )
    return turns
