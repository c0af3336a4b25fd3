"""The ``scienceqa`` data format: ScienceQA's problems.json + pid_splits.json, in any prompt format.

Layout (lupantech/ScienceQA, data/scienceqa): ``problems.json`` maps a problem id (pid) to
its question, choices, answer index, hint, image file name (or null), lecture, solution and
metadata; ``pid_splits.json`` maps a split name (train, val, test, minival, minitest, ...) to
its pids. Images live at ``images/{split}/{pid}/image.png``; the reader also accepts the
images folder itself as the image root (``{split}/{pid}/...``) or a flat ``{pid}/...`` folder,
checked per problem in that order. ``{split}`` is the problem's own ``split`` field, so minival
finds its images under val/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from llava_kit.components import Options
from llava_kit.constants import IMAGE_PLACEHOLDER
from llava_kit.data.formats.base import DataFormat
from llava_kit.data.formats.fields import UnknownField, unknown_keys
from llava_kit.data.formats.problems import SampleProblem, collect_problem
from llava_kit.data.images import resolve_image
from llava_kit.data.sample import Sample
from llava_kit.data.scienceqa_prompts import (
    OPTION_LETTERS,
    parse_prompt_format,
    problem_meta,
    render_input,
    render_output,
)
from llava_kit.errors import DataError
from llava_kit.json_io import read_json
from llava_kit.templates.base import Message

PROBLEMS_FILE = "problems.json"
SPLITS_FILE = "pid_splits.json"
CAPTIONS_FILE = "captions.json"
_WHERE_TO_GET = (
    "get problems.json and pid_splits.json from the ScienceQA repository "
    "(github.com/lupantech/ScienceQA, folder data/scienceqa; its tools/download.sh fetches the "
    "images; the Hugging Face dataset derek-thomas/ScienceQA holds the same problems as parquet, "
    "not this layout) and set the recipe field data.root to that folder; "
    "`llava-kit data synth-scienceqa --out DIR` writes a small synthetic copy"
)
_MAX_LISTED_ERRORS = 20
_META_IF_PRESENT = ("topic", "category", "skill")
# The keys of a problem in problems.json ("caption" for copies with captions merged in).
PROBLEM_FIELDS = frozenset({
    "question", "choices", "answer", "hint", "image", "task", "grade", "subject", "topic",
    "category", "skill", "lecture", "solution", "split", "caption",
})


class ScienceQAOptions(Options):
    root: str
    split: str = "train"
    image_root: str | None = None
    prompt_format: str = "QCM-LEA"
    use_caption: bool = False
    limit: int | None = Field(default=None, ge=1)


class ScienceQAFormat(DataFormat):
    """ScienceQA multiple-choice problems rendered in a reference prompt format (e.g. QCM-LEA)."""

    Options = ScienceQAOptions

    def load(self) -> list[Sample]:
        opts: ScienceQAOptions = self.options  # type: ignore[assignment]
        input_fmt, output_fmt = parse_prompt_format(opts.prompt_format)
        root = Path(opts.root)
        image_root = Path(opts.image_root) if opts.image_root else root
        problems = read_split(root, opts.split, use_caption=opts.use_caption, limit=opts.limit)
        samples: list[Sample] = []
        missing: list[str] = []
        for pid, problem in problems:
            images: list[Path] = []
            prompt = render_input(problem, input_fmt, opts.use_caption)
            if problem.get("image"):
                path = find_image(image_root, pid, problem, opts.split)
                if path is None:
                    missing.append(pid)
                    continue
                images.append(path)
                # Where the reference training code puts it; the recipe may move it later.
                prompt = f"{IMAGE_PLACEHOLDER}\n{prompt}"
            samples.append(Sample(
                id=pid,
                messages=[
                    Message("user", prompt),
                    Message("assistant", render_output(problem, output_fmt)),
                ],
                images=images,
                meta=_meta(problem, opts.split),
            ))
        if missing and not _collected(image_root, missing, problems, opts.split):
            raise _missing_images_error(image_root, missing, problems, opts.split)
        return samples

    def source_files(self) -> list[Path]:
        opts: ScienceQAOptions = self.options  # type: ignore[assignment]
        root = Path(opts.root)
        names = [PROBLEMS_FILE, SPLITS_FILE] + ([CAPTIONS_FILE] if opts.use_caption else [])
        return [root / name for name in names]

    def unknown_fields(self) -> list[UnknownField]:
        """Unknown keys of the split's problems, bad problems included (load drops those)."""
        opts: ScienceQAOptions = self.options  # type: ignore[assignment]
        source = Path(opts.root) / PROBLEMS_FILE
        problems = _read_json(source)
        splits = _read_json(Path(opts.root) / SPLITS_FILE)
        pids = splits.get(opts.split) if isinstance(splits, dict) else None
        if not isinstance(problems, dict) or not isinstance(pids, list):
            return []  # unreadable layouts are load's to report
        found: list[UnknownField] = []
        for pid in [str(p) for p in pids][:opts.limit]:
            problem = problems.get(pid)
            extra = unknown_keys(problem, PROBLEM_FIELDS) if isinstance(problem, dict) else None
            if extra:
                found.append(UnknownField(source, pid, extra))
        return found


def export_llava_json(
    root: Path | str,
    split: str,
    prompt_format: str,
    out_file: Path | str,
    use_caption: bool = False,
) -> int:
    """Write one split as the LLaVA conversation JSON the reference training script reads.

    Matches scripts/convert_sqa_to_llava.py: ``image`` is ``{pid}/image.png``, relative to the
    split's image folder (``images/train`` for training), and an image question's human turn
    ends with a line holding just ``<image>`` (the reference's training code moves the marker
    to the front).
    Returns the number of records written.
    """
    input_fmt, output_fmt = parse_prompt_format(prompt_format)
    records: list[dict[str, Any]] = []
    for pid, problem in read_split(Path(root), split, use_caption=use_caption):
        human = render_input(problem, input_fmt, use_caption)
        record: dict[str, Any] = {"id": pid}
        if problem.get("image"):
            record["image"] = f"{pid}/{problem['image']}"
            human = f"{human}\n{IMAGE_PLACEHOLDER}"
        record["conversations"] = [
            {"from": "human", "value": human},
            {"from": "gpt", "value": render_output(problem, output_fmt)},
        ]
        records.append(record)
    out_path = Path(out_file)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("w", encoding="utf-8") as handle:
        json.dump(records, handle, indent=2)
    return len(records)


def read_split(
    root: Path, split: str, *, use_caption: bool = False, limit: int | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The checked problems of one split, in pid_splits.json order, with captions if asked."""
    problems = _read_json(root / PROBLEMS_FILE)
    splits = _read_json(root / SPLITS_FILE)
    if not isinstance(problems, dict):
        raise DataError(f"{root / PROBLEMS_FILE}: expected an object mapping pid -> problem")
    if not isinstance(splits, dict):
        raise DataError(f"{root / SPLITS_FILE}: expected an object mapping split -> pids")
    if split not in splits:
        raise DataError(
            f"{root / SPLITS_FILE}: no split {split!r}; available: {', '.join(sorted(splits))}",
            hint="set the data format's split option to one of the available splits",
        )
    if not isinstance(splits[split], list):
        raise DataError(f"{root / SPLITS_FILE}: split {split!r} must be a list of pids")
    pids = [str(pid) for pid in splits[split]]
    if limit is not None:
        pids = pids[:limit]
    captions = _read_captions(root) if use_caption else {}
    errors: list[str] = []
    selected: list[tuple[str, dict[str, Any]]] = []
    for pid in pids:
        problem = problems.get(pid)
        if problem is None:
            errors.append(f"pid {pid!r} (split {split!r}) is not in {PROBLEMS_FILE}")
            continue
        found = problem_errors(pid, problem)
        if found:
            source = root / PROBLEMS_FILE
            # Under `data check` or on_bad_sample: skip, a bad problem is dropped and listed.
            if not all(collect_problem(SampleProblem(
                "bad_record", source, f"pid {pid!r}", line.removeprefix(f"pid {pid!r}: "), pid))
                       for line in found):
                errors.extend(found)
            continue
        if use_caption:
            problem = {**problem, "caption": captions.get(pid, "")}
        selected.append((pid, problem))
    if errors:
        raise DataError(
            f"{root / PROBLEMS_FILE}: {len(errors)} invalid problem(s) in split {split!r}:\n"
            + _listing(errors),
            hint="fix or remove these problems (or re-download the dataset)",
        )
    return selected


def problem_errors(pid: str, problem: Any) -> list[str]:
    """What is wrong with one problem record (empty when it can be rendered)."""
    if not isinstance(problem, dict):
        return [f"pid {pid!r}: expected an object, got {type(problem).__name__}"]
    errors: list[str] = []
    if not isinstance(problem.get("question"), str):
        errors.append(f"pid {pid!r}: 'question' must be a string")
    choices = problem.get("choices")
    if not (isinstance(choices, list) and all(isinstance(c, str) for c in choices)):
        errors.append(f"pid {pid!r}: 'choices' must be a list of strings")
    elif not 1 <= len(choices) <= len(OPTION_LETTERS):
        errors.append(
            f"pid {pid!r}: {len(choices)} choices; the prompt letters allow 1 to "
            f"{len(OPTION_LETTERS)}"
        )
    else:
        answer = problem.get("answer")
        if not isinstance(answer, int) or isinstance(answer, bool) or not (
            0 <= answer < len(choices)
        ):
            errors.append(
                f"pid {pid!r}: 'answer' must be a choice index 0..{len(choices) - 1}, "
                f"got {answer!r}"
            )
    for key in ("hint", "lecture", "solution", "image"):
        value = problem.get(key)
        if value is not None and not isinstance(value, str):
            errors.append(f"pid {pid!r}: {key!r} must be a string or null")
    return errors


def find_image(image_root: Path, pid: str, problem: dict[str, Any], split: str) -> Path | None:
    """The problem's image under any accepted layout, or None when no layout has it."""
    for relative in image_candidates(pid, problem, split):
        if (image_root / relative).is_file():
            # resolve_image rejects pids or file names that escape the image root.
            return resolve_image(image_root, relative, sample_id=pid, source=image_root)
    return None


def image_candidates(pid: str, problem: dict[str, Any], split: str) -> list[str]:
    """Relative paths tried for a problem's image, in order (official, images/, flat)."""
    own_split = problem.get("split") or split
    name = problem["image"]
    return [f"{own_split}/{pid}/{name}", f"images/{own_split}/{pid}/{name}", f"{pid}/{name}"]


def _meta(problem: dict[str, Any], split: str) -> dict[str, Any]:
    meta = {**problem_meta(problem), "split": problem.get("split") or split}
    meta.update({key: problem[key] for key in _META_IF_PRESENT if key in problem})
    return meta


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"ScienceQA file not found: {path}", hint=_WHERE_TO_GET)
    return read_json(path, hint="re-download the file; it may be truncated")


def _read_captions(root: Path) -> dict[str, str]:
    """pid -> caption, from ScienceQA's {"captions": {pid: text}} or a [{id, caption}] list."""
    path = root / CAPTIONS_FILE
    if not path.is_file():
        raise DataError(
            f"use_caption is set but {path} does not exist",
            hint="copy ScienceQA's data/captions.json into data.root, or set use_caption: false",
        )
    data = _read_json(path)
    if isinstance(data, dict) and isinstance(data.get("captions"), dict):
        return {str(pid): str(text) for pid, text in data["captions"].items()}
    if isinstance(data, list) and all(
        isinstance(r, dict) and "id" in r and "caption" in r for r in data
    ):
        return {str(r["id"]): str(r["caption"]) for r in data}
    raise DataError(
        f"{path}: expected {{\"captions\": {{pid: caption}}}} or a list of {{id, caption}} records",
        hint="use the captions.json from the ScienceQA repository",
    )


def _collected(
    image_root: Path, missing: list[str], problems: list[tuple[str, dict[str, Any]]], split: str
) -> bool:
    """Hand each missing image to an active problem collector; False when none is active."""
    by_pid = dict(problems)
    return all(
        collect_problem(SampleProblem(
            "missing_image", image_root, f"pid {pid!r}",
            "image not found under the image root; tried "
            + ", ".join(image_candidates(pid, by_pid[pid], split)),
            pid,
            absent=tuple(image_root / path for path in image_candidates(pid, by_pid[pid], split)),
        ))
        for pid in missing
    )


def _missing_images_error(
    image_root: Path, missing: list[str], problems: list[tuple[str, dict[str, Any]]], split: str
) -> DataError:
    by_pid = dict(problems)
    lines = [
        f"pid {pid!r}: none of " + ", ".join(image_candidates(pid, by_pid[pid], split))
        for pid in missing
    ]
    return DataError(
        f"{len(missing)} image(s) of split {split!r} not found under {image_root}:\n"
        + _listing(lines),
        hint="set the data format's image_root option to the folder holding the images "
        "(ScienceQA's data/scienceqa/images) and check that they are downloaded",
    )


def _listing(lines: list[str]) -> str:
    shown = "\n".join(f"  {line}" for line in lines[:_MAX_LISTED_ERRORS])
    extra = len(lines) - _MAX_LISTED_ERRORS
    return shown + (f"\n  ... and {extra} more" if extra > 0 else "")
