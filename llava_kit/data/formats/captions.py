"""Image-caption pairs as stage-1 instruction data (the paper's "naive expansion").

Two record layouts are read, so that the released stage-1 files work as they are:

- ``{"id": ..., "image": "a.jpg", "caption": "..."}``;
- the LLaVA pretraining layout (CC-595K ``chat.json``, LCS-558K
  ``blip_laion_cc_sbu_558k.json``): ``{"id", "image", "conversations": [human, gpt]}``,
  where the gpt turn is the caption.

Every sample becomes ``user: "<instruction>\\n<image>"``, ``assistant: caption``, the
instruction drawn from the paper's 11 brief-description instructions by sample id and
``instruction_seed``. The human turn of the pretraining layout is replaced by that drawn
instruction like any other record; read such a file with ``llava_json`` instead to keep its
own instructions. With the ``plain`` template the instruction is dropped when the sample is
rendered (only the image and the caption remain), which is the reference's stage-1 setup.
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
from llava_kit.data.instructions import BRIEF_INSTRUCTIONS, pick_instruction
from llava_kit.data.sample import Sample
from llava_kit.templates.base import Message

RECORD_FIELDS = frozenset({"id", "image", "caption", "conversations"})


class CaptionsOptions(Options):
    path: str
    image_root: str
    instruction_seed: int = 0
    limit: int | None = Field(default=None, ge=1)


class CaptionsFormat(DataFormat):
    """Image-caption pairs as brief-description instructions (stage-1 data)."""

    Options = CaptionsOptions

    def load(self) -> list[Sample]:
        options: CaptionsOptions = self.options  # type: ignore[assignment]
        source = Path(options.path)
        problems = Problems(source)
        samples: list[Sample] = []
        with gc_paused():
            # The data file first: when both are missing, its error says where to get the data.
            records = read_records(source, options.limit)
            resolver = ImageResolver(image_root_dir(options.image_root))
            for where, record in records:
                sample = self._parse(record, where, resolver, problems)
                if sample is not None:
                    samples.append(sample)
        problems.raise_if_any()
        return samples

    def source_files(self) -> list[Path]:
        options: CaptionsOptions = self.options  # type: ignore[assignment]
        return [Path(options.path)]

    def unknown_fields(self) -> list[UnknownField]:
        options: CaptionsOptions = self.options  # type: ignore[assignment]
        return conversation_unknown_fields(Path(options.path), options.limit, RECORD_FIELDS)

    def _parse(
        self, record: Any, where: str, resolver: ImageResolver, problems: Problems
    ) -> Sample | None:
        header = record_header(record, where, problems)
        if header is None:
            return None
        origin = where  # the record's place in the file; `where` becomes its label
        sample_id, where = header
        caption = _caption(record, where, problems)
        image = record.get("image")
        if not isinstance(image, str) or not image:
            problems.add(where, "'image' must be one non-empty path string")
            return None
        images = resolver.resolve([image], where, problems)
        if caption is None or not images:
            return None
        options: CaptionsOptions = self.options  # type: ignore[assignment]
        instruction = pick_instruction(BRIEF_INSTRUCTIONS, sample_id, options.instruction_seed)
        messages = [
            Message(role="user", content=f"{instruction}\n{IMAGE_PLACEHOLDER}"),
            Message(role="assistant", content=caption),
        ]
        return Sample(id=sample_id, messages=messages, images=images, origin=origin)


def _caption(record: dict[str, Any], where: str, problems: Problems) -> str | None:
    """The caption, from 'caption' or from the gpt turn of a pretraining-layout record."""
    has_caption, has_conversation = "caption" in record, "conversations" in record
    if has_caption and has_conversation:
        problems.add(where, "has both 'caption' and 'conversations'; keep one of them")
        return None
    if has_caption:
        caption = record["caption"]
    elif has_conversation:
        caption = _caption_turn(record["conversations"])
        if caption is None:
            problems.add(
                where,
                "'conversations' must be exactly one human turn and one gpt turn (the caption)",
            )
            return None
    else:
        problems.add(
            where, "needs a 'caption' (or 'conversations' in the LLaVA pretraining layout)"
        )
        return None
    if not isinstance(caption, str) or not caption.strip():
        kind = "empty_answer" if isinstance(caption, str) else "bad_record"
        problems.add(where, "the caption must be a non-empty string", kind)
        return None
    return caption


def _caption_turn(turns: Any) -> Any:
    """The gpt turn's value of a [human, gpt] conversation, else None."""
    if not isinstance(turns, list) or len(turns) != 2:
        return None
    if not all(isinstance(turn, dict) and isinstance(turn.get("from"), str) for turn in turns):
        return None
    roles = [ROLE_ALIASES.get(turn["from"]) for turn in turns]
    if roles != ["user", "assistant"]:
        return None
    return turns[1].get("value")
