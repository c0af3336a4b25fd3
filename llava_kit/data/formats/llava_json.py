"""The LLaVA conversation file format (LLaVA-Instruct-158K, mix-665K, ScienceQA conversions).

Each record looks like::

    {"id": "000000033471", "image": "000000033471.jpg",
     "conversations": [{"from": "human", "value": "<image>\\nWhat is ...?"},
                       {"from": "gpt", "value": "The ..."}, ...]}

``image`` is optional (text-only samples) and may be a list for several images.
The helpers here (reading a JSON list or JSONL file, collecting every problem into one
error, resolving images) are shared with the ``captions`` format.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from pydantic import Field

from llava_kit.components import Options
from llava_kit.constants import IMAGE_PLACEHOLDER
from llava_kit.data.formats.base import DataFormat
from llava_kit.data.images import resolve_image
from llava_kit.data.sample import Sample
from llava_kit.errors import DataError
from llava_kit.json_io import parse_json, read_json
from llava_kit.templates.base import Message, Role

# LLaVA files say human/gpt; user/assistant are accepted for hand-written data.
ROLE_ALIASES: dict[str, Role] = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
}
# Enough lines to see the pattern of what is wrong without flooding the terminal.
MAX_LISTED_PROBLEMS = 20
# Where the released LLaVA data files live, named when one is missing.
PUBLIC_DATA_FILES: dict[str, str] = {
    "chat.json": "CC-595K, in the Hugging Face dataset liuhaotian/LLaVA-CC3M-Pretrain-595K "
    "(images in its images.zip; set data.image_root to the unpacked folder)",
    "blip_laion_cc_sbu_558k.json": "LCS-558K, in the Hugging Face dataset "
    "liuhaotian/LLaVA-Pretrain (images in its images.zip; set data.image_root to the unpacked folder)",
    "llava_instruct_158k.json": "LLaVA-Instruct-158K, in the Hugging Face dataset "
    "liuhaotian/LLaVA-Instruct-150K (images: COCO train2017; set data.image_root to it)",
    "llava_v1_5_mix665k.json": "mix-665K, in the Hugging Face dataset "
    "liuhaotian/LLaVA-Instruct-150K (images: COCO, GQA, OCR-VQA, TextVQA, VisualGenome, laid out as the LLaVA repository's "
    "docs describe; set data.image_root to their parent folder)",
}


class LlavaJSONOptions(Options):
    path: str
    image_root: str | None = None
    limit: int | None = Field(default=None, ge=1)


@dataclass(frozen=True)
class SampleProblem:
    """One bad record, kept (instead of raised) while ``collecting_problems`` is active."""

    source: Path
    where: str
    message: str
    sample_id: str | None


# Set by `llava-kit data check` and the skip policy: problems are gathered, bad records dropped.
_collector: ContextVar[list[SampleProblem] | None] = ContextVar("problem_collector", default=None)


@contextmanager
def collecting_problems() -> Iterator[list[SampleProblem]]:
    """Within this block, readers drop bad records and list them here instead of raising."""
    found: list[SampleProblem] = []
    token = _collector.set(found)
    try:
        yield found
    finally:
        _collector.reset(token)


def collect_problem(problem: SampleProblem) -> bool:
    """Hand ``problem`` to an active collector; False when none is active (raise instead)."""
    collector = _collector.get()
    if collector is None:
        return False
    collector.append(problem)
    return True


@dataclass
class Problems:
    """Every problem found in one data file, raised together as one DataError."""

    source: Path
    lines: list[str] = field(default_factory=list)
    entries: list[SampleProblem] = field(default_factory=list)
    # location label -> sample id, so a collected problem names its sample.
    ids: dict[str, str] = field(default_factory=dict)

    def add(self, where: str, message: str) -> None:
        self.lines.append(f"{where}: {message}")
        self.entries.append(SampleProblem(self.source, where, message, self.ids.get(where)))

    def raise_if_any(self) -> None:
        if not self.lines:
            return
        if _collector.get() is not None:
            for entry in self.entries:
                collect_problem(entry)
            return
        count = len(self.lines)
        listed = [f"  {line}" for line in self.lines[:MAX_LISTED_PROBLEMS]]
        if count > MAX_LISTED_PROBLEMS:
            listed.append(f"  ... and {count - MAX_LISTED_PROBLEMS} more")
        noun = "problem" if count == 1 else "problems"
        raise DataError(
            f"{self.source}: {count} {noun} in the data file:\n" + "\n".join(listed),
            hint="fix or remove the records listed; records are counted from 0, lines from 1",
        )


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large file becomes objects.

    Reading builds millions of small objects and no cycles; the collector would otherwise
    rescan them over and over, about doubling the time to read a 158K-record file.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_records(source: Path, limit: int | None) -> list[tuple[str, Any]]:
    """(location, record) pairs from a JSON list file or, for ``.jsonl``, one record per line.

    The location ("record [3]" or "line 4") is how problems point back into the file.
    """
    if not source.is_file():
        public = PUBLIC_DATA_FILES.get(source.name)
        raise DataError(
            f"data file not found: {source} (data format option 'path': recipe field "
            "stages.<stage>.data.path)",
            hint=(f"{source.name} is {public}; " if public else "")
            + "set the field to the file, e.g. --set stages.<stage>.data.path=/data/"
            f"{source.name}; relative paths are taken from the working directory",
        )
    if source.suffix == ".jsonl":
        return _read_jsonl(source, limit)
    try:
        data = read_json(source, hint="the file must be one JSON list of records")
    except DataError as exc:
        if "Extra data" in exc.message:
            exc.hint = f"{exc.hint}; if it holds one record per line, give it the .jsonl extension"
        raise
    if not isinstance(data, list):
        raise DataError(
            f"{source}: expected a JSON list of records, found a {type(data).__name__}",
            hint="put the records in a top-level list, or use one record per line in a .jsonl file",
        )
    if limit is not None:
        data = data[:limit]
    return [(f"record [{index}]", record) for index, record in enumerate(data)]


def _read_jsonl(source: Path, limit: int | None) -> list[tuple[str, Any]]:
    records: list[tuple[str, Any]] = []
    problems = Problems(source)
    with source.open(encoding="utf-8") as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if limit is not None and len(records) >= limit:
                    break
                text = line.rstrip("\r\n")
                if not text.strip():
                    continue
                where = f"line {number}"
                try:
                    records.append((where, parse_json(text, where, column_only=True)))
                except DataError as exc:
                    problems.add(where, exc.message.removeprefix(f"{where}: "))
        except UnicodeDecodeError as exc:
            raise DataError(f"{source}: not UTF-8 text ({exc.reason})",
                            hint="save the file as UTF-8") from None
    problems.raise_if_any()
    return records


def image_root_dir(image_root: str) -> Path:
    """The image root as a Path, checked to be an existing folder."""
    root = Path(image_root)
    if not root.is_dir():
        raise DataError(
            f"image folder not found: {root} (recipe field stages.<stage>.data.image_root)",
            hint="set image_root to the folder the records' image paths are relative to",
        )
    return root


def record_header(record: Any, where: str, problems: Problems) -> tuple[str, str] | None:
    """A record's id and the location to name in its problems, or None if unusable."""
    if not isinstance(record, dict):
        problems.add(where, f"expected a JSON object, found a {type(record).__name__}")
        return None
    sample_id = record_id(record, where, problems)
    if sample_id is None:
        return None
    label = f"sample {sample_id!r} ({where})"
    problems.ids[label] = sample_id
    return sample_id, label


def record_id(record: dict[str, Any], where: str, problems: Problems) -> str | None:
    """The record's id as a string, or None after recording why it is unusable."""
    raw = record.get("id")
    if raw is None:
        problems.add(where, "missing 'id'; every record needs a string or integer id")
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        problems.add(where, f"'id' must be a string or an integer, not {type(raw).__name__}")
        return None
    if raw == "":
        problems.add(where, "'id' is empty")
        return None
    return str(raw)


@dataclass
class ImageResolver:
    """Resolves image paths inside one root, each distinct path once.

    Conversation files often point several records at the same image (LLaVA-Instruct-158K
    has about two per image), and checking a path on disk costs far more than a lookup.
    """

    root: Path
    source: Path
    _resolved: dict[str, Path] = field(default_factory=dict)

    def resolve(
        self, relative: list[str], sample_id: str, where: str, problems: Problems
    ) -> list[Path]:
        """Resolved paths; each one outside the root or missing becomes a problem."""
        resolved: list[Path] = []
        for path in relative:
            found = self._resolved.get(path)
            if found is None:
                try:
                    found = resolve_image(self.root, path, sample_id=sample_id, source=self.source)
                except DataError as exc:
                    # The grouped error already names the file and the sample.
                    prefix = f"{self.source}: sample {sample_id!r}: "
                    problems.add(where, exc.message.removeprefix(prefix))
                    continue
                self._resolved[path] = found
            resolved.append(found)
        return resolved


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
            ImageResolver(image_root_dir(options.image_root), source)
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
        sample_id, where = header
        before = len(problems.lines)

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
            images = resolver.resolve(relative, sample_id, where, problems)
        if len(problems.lines) > before:
            return None
        messages = [Message(role=role, content=text) for role, text in turns]
        return Sample(id=sample_id, messages=messages, images=images)


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
        problems.add(where, "the last turn is from 'human' and has no gpt answer to train on")
        return None
    return turns


def _match_image_markers(
    turns: list[tuple[Role, str]], image_count: int, where: str, problems: Problems
) -> list[tuple[Role, str]]:
    """Check that ``<image>`` markers match the images, adding them when there are none."""
    in_answers = sum(text.count(IMAGE_PLACEHOLDER) for role, text in turns if role == "assistant")
    if in_answers:
        problems.add(where, f"{IMAGE_PLACEHOLDER} appears in a gpt turn; images go in human turns")
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
        )
    return turns
