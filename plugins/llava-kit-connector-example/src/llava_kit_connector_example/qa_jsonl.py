"""``qa_jsonl``: one question-answer pair per line, with at most one image.

Each line of the file is one record::

    {"id": "q1", "question": "What colour is the square?", "answer": "Red.", "image": "q1.png"}

``image`` is optional and relative to the ``image_root`` option. The sample is one user turn
(the question, after ``<image>\\n`` when there is an image) and one assistant turn (the
answer). The reader places the image marker itself, so a question may not contain one.
Every problem is reported with its kind, so ``llava-kit data check`` lists it under its
heading and ``runtime.on_bad_sample: skip`` can leave the record out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from llava_kit.components import Options
from llava_kit.constants import IMAGE_PLACEHOLDER
from llava_kit.data.formats.base import DataFormat
from llava_kit.data.formats.fields import UnknownField, unknown_keys
from llava_kit.data.formats.image_paths import ImageResolver, image_root_dir
from llava_kit.data.formats.problems import Problems
from llava_kit.data.formats.records import read_records, record_header
from llava_kit.data.sample import Sample
from llava_kit.templates.base import Message
from pydantic import Field

RECORD_FIELDS = frozenset({"id", "question", "answer", "image"})


class QAJsonlOptions(Options):
    """Options of ``qa_jsonl``."""

    path: str = Field(description="the .jsonl file, one record per line")
    image_root: str | None = Field(
        None, description="the folder the records' image paths are relative to"
    )
    limit: int | None = Field(None, ge=1, description="read only the first N records")


class QAJsonlFormat(DataFormat):
    """Question-answer pairs, one JSON object per line, each with at most one image."""

    Options: ClassVar[type[Options]] = QAJsonlOptions

    def load(self) -> list[Sample]:
        options: QAJsonlOptions = self.options  # type: ignore[assignment]
        source = Path(options.path)
        records = read_records(source, options.limit)
        root = options.image_root
        resolver = ImageResolver(image_root_dir(root)) if root is not None else None
        problems = Problems(source)
        samples: list[Sample] = []
        for where, record in records:
            sample = _parse(record, where, resolver, problems)
            if sample is not None:
                samples.append(sample)
        problems.raise_if_any()
        return samples

    def unknown_fields(self) -> list[UnknownField]:
        options: QAJsonlOptions = self.options  # type: ignore[assignment]
        source = Path(options.path)
        found: list[UnknownField] = []
        for where, record in read_records(source, options.limit):
            extra = unknown_keys(record, RECORD_FIELDS) if isinstance(record, dict) else None
            if extra:
                raw_id = record.get("id")
                sample_id = str(raw_id) if isinstance(raw_id, (str, int)) else None
                found.append(UnknownField(source, sample_id, f"{where}: {extra}"))
        return found


def _parse(
    record: Any, where: str, resolver: ImageResolver | None, problems: Problems
) -> Sample | None:
    header = record_header(record, where, problems)
    if header is None:
        return None
    sample_id, where = header
    before = len(problems)
    question, answer, image = record.get("question"), record.get("answer"), record.get("image")
    if not isinstance(question, str) or not question.strip():
        problems.add(where, "'question' must be a non-empty string")
    elif IMAGE_PLACEHOLDER in question:
        problems.add(
            where, f"the question contains {IMAGE_PLACEHOLDER}; the reader places the marker",
            "image_markers",
        )
    if "answer" not in record:
        problems.add(where, "has no 'answer', so nothing would be trained", "no_answer")
    elif not isinstance(answer, str):
        problems.add(where, "'answer' must be a string")
    elif not answer.strip():
        problems.add(where, "the answer is empty", "empty_answer")
    images: list[Path] = []
    if image is not None:
        if not isinstance(image, str) or not image:
            problems.add(where, "'image' must be a non-empty path string")
        elif resolver is None:
            problems.add(where, "has an image but the data format option 'image_root' is not set")
        else:
            images = resolver.resolve([image], where, problems)
    if len(problems) > before:
        return None
    prompt = f"{IMAGE_PLACEHOLDER}\n{question}" if images else question
    return Sample(
        id=sample_id,
        messages=[Message("user", prompt), Message("assistant", answer)],
        images=images,
    )
