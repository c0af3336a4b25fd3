"""A small synthetic ScienceQA in the real dataset's layout, for the offline end-to-end demo.

Writes ``problems.json``, ``pid_splits.json`` and ``{split}/{pid}/image.png`` exactly as
ScienceQA lays them out (so the ``scienceqa`` reader and ``convert-scienceqa`` work on it),
plus ``captions.json`` (stage-1 image/caption pairs) and ``tokenizer/`` (a small tokenizer
trained on every text the dataset and the chat templates contain).

Mix: about 60% image questions (answerable only from the image), 25% text-context
questions (the hint states the answer), 15% no-context questions, over natural, social and
language science and grades 1 to 12. Answers are balanced within every family and split.
Everything is drawn from one seeded generator, so the same n and seed give byte-identical
files.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from llava_kit.data.instructions import BRIEF_INSTRUCTIONS
from llava_kit.data.scienceqa_prompts import render_input, render_output
from llava_kit.demo.drawing import caption, save_scene
from llava_kit.demo.synth_families import FAMILIES, Context, Family, Item
from llava_kit.errors import DataError

IMAGE_FILE = "image.png"
TOKENIZER_DIR = "tokenizer"
CONTEXT_SHARES: dict[Context, float] = {"image": 0.60, "text": 0.25, "none": 0.15}
SPLIT_SHARES = {"train": 0.8, "val": 0.1, "test": 0.1}  # val and test share the rest
_OUTPUTS = ("problems.json", "pid_splits.json", "captions.json", TOKENIZER_DIR, *SPLIT_SHARES)
# Written before anything else: the generator replaces only folders that carry it, so a
# real dataset (or a half-written synthetic one of someone else's) is never deleted.
GENERATED_MARKER = ".llava-kit-synthetic.json"

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class SynthSummary:
    out_dir: Path
    problems: int
    splits: dict[str, int]
    contexts: dict[str, int]
    subjects: dict[str, int]
    families: dict[str, int]
    images: int
    captions: int
    tokenizer_dir: Path
    vocab_size: int

    def rows(self) -> list[tuple[str, str]]:
        """(what, value) pairs for a summary table."""
        def counts(values: dict[str, int]) -> str:
            return ", ".join(f"{key} {count}" for key, count in values.items())

        return [
            ("folder", str(self.out_dir)),
            ("problems", str(self.problems)),
            ("splits", counts(self.splits)),
            ("context", counts(self.contexts)),
            ("subjects", counts(self.subjects)),
            ("families", counts(self.families)),
            ("images", str(self.images)),
            ("stage-1 captions (train images)", str(self.captions)),
            ("tokenizer", f"{self.tokenizer_dir} ({self.vocab_size} tokens)"),
        ]


def synth_scienceqa(
    out_dir: Path,
    n: int = 1500,
    seed: int = 0,
    *,
    overwrite: bool = False,
    on_progress: ProgressFn | None = None,
) -> SynthSummary:
    """Generate ``n`` problems under ``out_dir``; ``on_progress(done, total)`` after each step."""
    if n < 1:
        raise DataError(f"synth-scienceqa needs at least one problem, got n={n}")
    out_dir = Path(out_dir)
    _prepare(out_dir, overwrite)
    _write_json(out_dir / GENERATED_MARKER, {"generator": "llava-kit synth-scienceqa", "n": n, "seed": seed})
    rng = random.Random(seed)
    plan = _plan(n, rng)
    total = len(plan) + 1  # every problem, then the tokenizer
    problems: dict[str, dict[str, Any]] = {}
    captions: list[dict[str, str]] = []
    for index, (family, split, answer) in enumerate(plan, start=1):
        pid = str(index)
        item = family.make(answer, rng)
        problems[pid] = _problem(family, item, split, answer, rng)
        scene = item.scene
        if scene is not None:
            relative = f"{split}/{pid}/{IMAGE_FILE}"
            save_scene(scene, out_dir / relative)
            # Stage 1 sees training images only, so evaluation images stay unseen.
            if split == "train":
                captions.append({"id": pid, "image": relative, "caption": caption(scene)})
        if on_progress is not None:
            on_progress(index, total)
    pid_splits = _pid_splits(problems, rng)
    _write_json(out_dir / "problems.json", problems)
    _write_json(out_dir / "pid_splits.json", pid_splits)
    _write_json(out_dir / "captions.json", captions)
    tokenizer = _train_tokenizer(problems, captions, out_dir / TOKENIZER_DIR)
    if on_progress is not None:
        on_progress(total, total)
    return SynthSummary(
        out_dir=out_dir,
        problems=len(problems),
        splits={split: len(pids) for split, pids in pid_splits.items()},
        contexts=_ordered_counts((family.context for family, _, _ in plan), CONTEXT_SHARES),
        subjects=_ordered_counts(
            (family.subject for family, _, _ in plan), sorted({f.subject for f in FAMILIES})
        ),
        families=_ordered_counts(
            (family.name for family, _, _ in plan), [f.name for f in FAMILIES]
        ),
        images=sum(1 for problem in problems.values() if problem["image"]),
        captions=len(captions),
        tokenizer_dir=out_dir / TOKENIZER_DIR,
        vocab_size=len(tokenizer),
    )


def tokenizer_corpus(
    problems: dict[str, dict[str, Any]], captions: list[dict[str, str]]
) -> list[str]:
    """Every text a model meets in this dataset: prompts in the reference formats, captions."""
    texts: list[str] = []
    for problem in problems.values():
        texts.append(render_input(problem, "QCM", use_caption=False))
        # ALE and LEPA between them hold every fixed answer phrase of the output formats.
        texts.append(render_output(problem, "ALE"))
        texts.append(render_output(problem, "LEPA"))
    texts.extend(record["caption"] for record in captions)
    # Stage-1 prompts keep their instruction under chat templates other than plain.
    texts.extend(BRIEF_INSTRUCTIONS)
    return texts


def _plan(n: int, rng: random.Random) -> list[tuple[Family, str, int]]:
    """(family, split, answer) for every problem, in a shuffled order."""
    plan: list[tuple[Family, str, int]] = []
    for family, count in _family_counts(n).items():
        assigned = 0
        for split, split_count in _split_counts(count).items():
            # Continue the answer cycle across splits so the family total is balanced too.
            answers = [(assigned + i) % len(family.choices) for i in range(split_count)]
            rng.shuffle(answers)
            plan.extend((family, split, answer) for answer in answers)
            assigned += split_count
    rng.shuffle(plan)
    return plan


def _family_counts(n: int) -> dict[Family, int]:
    contexts = list(CONTEXT_SHARES)
    sizes = {context: round(n * CONTEXT_SHARES[context]) for context in contexts[:-1]}
    sizes[contexts[-1]] = n - sum(sizes.values())
    counts: dict[Family, int] = {}
    for context, size in sizes.items():
        members = [family for family in FAMILIES if family.context == context]
        share, extra = divmod(size, len(members))
        for position, family in enumerate(members):
            counts[family] = share + (1 if position < extra else 0)
    return counts


def _split_counts(count: int) -> dict[str, int]:
    train = int(count * SPLIT_SHARES["train"] + 0.5)
    # An odd remainder goes to test, the split the demo reports.
    val = (count - train) // 2
    return {"train": train, "val": val, "test": count - train - val}


def _problem(
    family: Family, item: Item, split: str, answer: int, rng: random.Random
) -> dict[str, Any]:
    return {
        "question": item.question,
        "choices": list(family.choices),
        "answer": answer,
        "hint": item.hint,
        "image": IMAGE_FILE if item.scene is not None else None,
        "task": "closed choice",
        "grade": f"grade{rng.randint(1, 12)}",
        "subject": family.subject,
        "topic": family.topic,
        "category": family.category,
        "skill": family.skill,
        "lecture": family.lecture,
        "solution": item.solution,
        "split": split,
    }


def _pid_splits(problems: dict[str, dict[str, Any]], rng: random.Random) -> dict[str, list[str]]:
    splits: dict[str, list[str]] = {split: [] for split in SPLIT_SHARES}
    for pid, problem in problems.items():
        splits[problem["split"]].append(pid)
    # Like ScienceQA's minival / minitest: fixed subsets of val and test for quick checks.
    for full, mini in (("val", "minival"), ("test", "minitest")):
        chosen = set(rng.sample(splits[full], len(splits[full]) // 2))
        splits[mini] = [pid for pid in splits[full] if pid in chosen]
    return splits


def _train_tokenizer(
    problems: dict[str, dict[str, Any]], captions: list[dict[str, str]], out_dir: Path
) -> Any:
    from llava_kit.tiny.tokenizer import default_corpus, train_tokenizer

    return train_tokenizer([*default_corpus(), *tokenizer_corpus(problems, captions)], out_dir)


def is_generated(out_dir: Path) -> bool:
    """Whether ``out_dir`` was written by this generator (complete or not)."""
    return (out_dir / GENERATED_MARKER).is_file()


def _prepare(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir} exists and is not a folder", hint="choose another --out path")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not is_generated(out_dir):
            raise DataError(
                f"{out_dir} is not empty and holds no synthetic dataset of llava-kit's "
                f"(no {GENERATED_MARKER}); refusing to write into it",
                hint="choose an empty or new folder; llava-kit only ever replaces data it generated",
            )
        if not overwrite:
            raise DataError(
                f"{out_dir} is not empty: it holds an earlier synthetic dataset",
                hint="choose an empty or new folder, or pass --overwrite to replace that "
                "synthetic dataset",
            )
        for name in (*_OUTPUTS, GENERATED_MARKER):  # the generator's own files; others stay
            target = out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def _write_json(path: Path, data: Any) -> None:
    with path.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")


def _ordered_counts(values: Iterable[str], order: Iterable[str]) -> dict[str, int]:
    counts = Counter(values)
    return {key: counts[key] for key in order}
