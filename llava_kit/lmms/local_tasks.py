"""llava-kit's local lmms-eval tasks: small synthetic POPE, MME, TextVQA-style and
LLaVA-Bench-in-the-wild-style sets in the real datasets' schemas, generated on first use,
so the suite runs offline (the judged one asks the judge it is given).

Each task's rows are drawn shape scenes (``llava_kit.demo.drawing``) whose questions the
image answers. They are written with ``datasets``' ``save_to_disk`` (the image column holds
the PNG bytes, as on the hub), beside a task file lmms-eval indexes from that folder
(``--include_path``): it includes the task's YAML shipped in ``llava_kit/lmms/tasks/`` and
names the data folder (``dataset_path``, read with ``load_from_disk``). A local copy of a
real benchmark is pointed at in the same way (see the README).

Everything is drawn from one seeded generator: the same seed gives the same rows.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llava_kit.demo.drawing import (
    COLOURS,
    NUMBER_WORDS,
    SHAPE_KINDS,
    Scene,
    Shape,
    caption,
    draw_scene,
)
from llava_kit.errors import DataError

SHIPPED_TASKS = Path(__file__).parent / "tasks"
GENERATED_MARKER = ".llava-kit-lmms-tasks.json"
_LEFT, _MIDDLE, _RIGHT = 16, 32, 48  # horizontal centres on the 64 px canvas


@dataclass(frozen=True)
class LocalTask:
    name: str  # the lmms-eval task name
    folder: str  # its data folder, under the local tasks' folder
    base: str  # the shipped YAML it includes
    split: str
    judged: bool = False  # scored by a judge model, which the evaluation must be given
    # Task-file keys over the shipped YAML's (each replaces that key whole).
    overrides: dict[str, Any] = field(default_factory=dict)


# The synthetic references are a sentence or two; the shipped YAML's budget suits real ones.
_SHORT_ANSWERS = {"generation_kwargs": {"max_new_tokens": 64, "temperature": 0,
                                        "do_sample": False, "num_beams": 1}}

LOCAL_TASKS: dict[str, LocalTask] = {
    task.name: task for task in (
        LocalTask("llava_kit_pope", "pope", "pope.yaml", "test"),
        LocalTask("llava_kit_pope_mc", "pope", "pope_mc.yaml", "test"),
        LocalTask("llava_kit_mme", "mme", "mme.yaml", "test"),
        LocalTask("llava_kit_textvqa", "textvqa", "textvqa.yaml", "validation"),
        LocalTask("llava_kit_llava_bench", "llava_bench", "llava_bench.yaml", "test",
                  judged=True, overrides=_SHORT_ANSWERS),
    )
}
JUDGED_LOCAL_TASKS = tuple(name for name, task in LOCAL_TASKS.items() if task.judged)


def ensure_local_tasks(out_dir: Path, seed: int = 0) -> Path:
    """The folder holding every local task's data and task file, generated when missing.

    A folder this generator finished is read as it is (its task files are rewritten, so
    they name this installation's YAMLs); one it left half-written, or finished before a
    task was added, is redone (the same seed gives the same rows); any other non-empty
    folder is refused."""
    out_dir = Path(out_dir)
    marker = out_dir / GENERATED_MARKER
    folders = {task.folder for task in LOCAL_TASKS.values()}
    complete = marker.is_file() and json.loads(marker.read_text(encoding="utf-8")).get("complete")
    if complete and all((out_dir / name).is_dir() for name in folders):
        _write_task_files(out_dir)
        return out_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir} exists and is not a folder",
                        hint="choose another folder for the local lmms-eval tasks")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not marker.is_file():
        raise DataError(
            f"{out_dir} is not empty and holds no local lmms-eval tasks of llava-kit's (no "
            f"{GENERATED_MARKER}); refusing to write into it",
            hint="choose an empty or new folder for them",
        )
    for name in folders:
        shutil.rmtree(out_dir / name, ignore_errors=True)  # a half-written earlier try
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_marker(marker, seed, complete=False)
    rng = random.Random(seed)
    _save(out_dir / "pope", "test", _pope_rows(rng, 24))
    _save(out_dir / "mme", "test", _mme_rows(rng, 3))
    _save(out_dir / "textvqa", "validation", _textvqa_rows(rng, 16))
    _save(out_dir / "llava_bench", "test", _llava_bench_rows(rng, 12))
    _write_task_files(out_dir)
    _write_marker(marker, seed, complete=True)
    return out_dir


def _write_marker(path: Path, seed: int, *, complete: bool) -> None:
    path.write_text(json.dumps({"generator": "llava-kit lmms local tasks", "seed": seed,
                                "complete": complete}) + "\n", encoding="utf-8")


def _write_task_files(out_dir: Path) -> None:
    for task in LOCAL_TASKS.values():
        text = (
            f"# Written by llava-kit: its local task {task.name} on the data in "
            f"{task.folder}/ beside this file.\n"
            f"include: {json.dumps(str(SHIPPED_TASKS / task.base))}\n"
            f"task: {task.name}\n"
            f"dataset_path: {json.dumps(str((out_dir / task.folder).resolve()))}\n"
            + "".join(f"{key}: {json.dumps(value)}\n" for key, value in task.overrides.items())
        )
        (out_dir / f"{task.name}.yaml").write_text(text, encoding="utf-8")


def _save(folder: Path, split: str, rows: list[dict[str, Any]]) -> None:
    import datasets

    def feature(value: Any) -> Any:
        if isinstance(value, list):
            return datasets.Sequence(datasets.Value("string"))
        if isinstance(value, int):
            return datasets.Value("int64")
        return datasets.Value("string") if isinstance(value, str) else datasets.Image()

    features = datasets.Features({name: feature(value) for name, value in rows[0].items()})
    table = {name: [row[name] for row in rows] for name in rows[0]}
    split_set = datasets.Dataset.from_dict(table, features=features)
    datasets.DatasetDict({split: split_set}).save_to_disk(str(folder))


def _single(kind: str, colour: str, cx: int = _MIDDLE) -> Scene:
    return Scene((Shape(kind, colour, cx, 32, 20),))


def _row(kind: str, count: int, colour: str) -> Scene:
    centres = {1: [_MIDDLE], 2: [20, 44], 3: [_LEFT - 4, _MIDDLE, _RIGHT + 4]}[count]
    return Scene(tuple(Shape(kind, colour, cx, 32, 12) for cx in centres))


def _other(rng: random.Random, options: tuple[str, ...] | list[str], not_this: str) -> str:
    return rng.choice([option for option in options if option != not_this])


def _pope_rows(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """POPE: "Is there a X in the image?", half present (yes), half absent (no). An absent
    object is drawn as POPE samples negatives: at random, or sharing the present object's
    kind ("popular") or colour ("adversarial")."""
    colours = list(COLOURS)
    rows = []
    for index in range(n):
        kind, colour = rng.choice(SHAPE_KINDS), rng.choice(colours)
        category = ("random", "popular", "adversarial")[index % 3]
        asked_kind, asked_colour, answer = kind, colour, "yes"
        if index % 2:
            answer = "no"
            if category == "popular":
                asked_colour = _other(rng, colours, colour)
            elif category == "adversarial":
                asked_kind = _other(rng, SHAPE_KINDS, kind)
            else:
                asked_kind = _other(rng, SHAPE_KINDS, kind)
                asked_colour = _other(rng, colours, colour)
        rows.append({
            "id": str(index), "question_id": str(index + 1),
            "question": f"Is there a {asked_colour} {asked_kind} in the image?",
            "answer": answer, "image_source": f"synthetic_{index:04d}",
            "image": draw_scene(_single(kind, colour)), "category": category,
        })
    return rows


def _mme_rows(rng: random.Random, per_category: int) -> list[dict[str, Any]]:
    """MME: two questions per image sharing its question_id, one answered Yes and one No;
    four perception categories and one cognition category."""
    rows = []
    suffix = " Please answer yes or no."
    for category in ("existence", "count", "position", "color", "numerical_calculation"):
        for number in range(per_category):
            kind, colour = rng.choice(SHAPE_KINDS), rng.choice(list(COLOURS))
            count = rng.randint(1, 3)
            other_count = _other(rng, ["1", "2", "3"], str(count))
            if category == "existence":
                scene = _single(kind, colour)
                pair = (f"Is there a {kind} in this image?",
                        f"Is there a {_other(rng, SHAPE_KINDS, kind)} in this image?")
            elif category == "count":
                scene = _row(kind, count, colour)
                pair = (f"Are there {NUMBER_WORDS[count - 1]} {kind}s in this image?",
                        f"Are there {NUMBER_WORDS[int(other_count) - 1]} {kind}s in this image?")
            elif category == "position":
                side = rng.choice(("left", "right"))
                scene = _single(kind, colour, _LEFT if side == "left" else _RIGHT)
                other_side = "right" if side == "left" else "left"
                pair = (f"Is the {kind} on the {side} of the image?",
                        f"Is the {kind} on the {other_side} of the image?")
            elif category == "color":
                scene = _single(kind, colour)
                pair = (f"Is the {kind} {colour}?",
                        f"Is the {kind} {_other(rng, list(COLOURS), colour)}?")
            else:
                scene = _row(kind, count, colour)
                pair = (f"Is the number of {kind}s plus one equal to {count + 1}?",
                        f"Is the number of {kind}s plus one equal to {int(other_count) + 1}?")
            image = draw_scene(scene)
            for question, answer in zip(pair, ("Yes", "No")):
                rows.append({"question_id": f"{category}/{number:04d}.png",
                             "question": question + suffix, "answer": answer,
                             "category": category, "image": image})
    return rows


def _textvqa_rows(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """TextVQA's schema: ten human answers per question, most of them the colour, some
    naming the shape too (VQA accuracy gives partial credit to those)."""
    rows = []
    for index in range(n):
        kind, colour = rng.choice(SHAPE_KINDS), rng.choice(list(COLOURS))
        answers = [colour] * 7 + [f"{colour} {kind}"] * 3
        rng.shuffle(answers)
        rows.append({
            "image_id": f"synthetic_{index:04d}", "question_id": index,
            "question": f"what colour is the {kind}?", "image": draw_scene(_single(kind, colour)),
            "image_width": 64, "image_height": 64, "answers": answers, "ocr_tokens": [],
            "image_classes": [kind], "set_name": "val",
        })
    return rows


def _llava_bench_rows(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """LLaVA-Bench-in-the-wild's schema: a question per row about a captioned image, the
    reference answer (``gpt_answer``) the judge compares the model's with, and the
    category, cycling conv, detail, complex so any first rows hold all three."""
    rows = []
    for index in range(n):
        kind, colour = rng.choice(SHAPE_KINDS), rng.choice(list(COLOURS))
        count = rng.randint(1, 3)
        scene = _row(kind, count, colour)
        described = caption(scene)
        plural = kind if count == 1 else f"{kind}s"
        category = ("conv", "detail", "complex")[index % 3]
        if category == "conv":
            question = f"What colour is the {kind} in the image?"
            answer = f"The {plural} in the image {'is' if count == 1 else 'are'} {colour}."
        elif category == "detail":
            question = "Describe the image in detail."
            answer = (f"The image shows {described} on a plain white background. Nothing "
                      f"else is drawn.")
        else:
            question = f"If one more {kind} were drawn, how many {kind}s would there be?"
            answer = (f"There {'is' if count == 1 else 'are'} {NUMBER_WORDS[count - 1]} "
                      f"{plural} now, so there would be {count + 1}.")
        rows.append({
            "question_id": str(index), "question": question, "image": draw_scene(scene),
            "caption": described, "gpt_answer": answer, "category": category,
            "image_id": f"synthetic_{index:04d}",
        })
    return rows
