"""lmms-eval's tasks on a llava-kit model in memory: its programmatic entry
(``simple_evaluate``) with the model handed over, nothing loaded twice.

Before anything runs (``prepare_tasks``, before the model is even opened), every task
name is checked against the tasks lmms-eval indexes (its own, the ``include_path``
folders', and llava-kit's local tasks, generated when asked for), and a task scored by
llava-kit's judge is refused unless a judge is set. While it runs, lmms-eval sees one
process (it shards documents by the ``RANK``/``WORLD_SIZE`` a training run's rank 0 still
carries) and leaves the random generators as it found them (it seeds them itself; a run
evaluated per epoch trains on), and the judged tasks ask the run's judge.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy
import torch

from llava_kit.atomic_files import atomic_write_text
from llava_kit.errors import LlavaKitError
from llava_kit.lmms import require_lmms_eval
from llava_kit.lmms.judge import JudgeSession, JudgeSettings, judging
from llava_kit.lmms.local_tasks import LOCAL_TASKS, ensure_local_tasks

if TYPE_CHECKING:
    from llava_kit.model.vlm import LlavaModel
    from llava_kit.templates.base import ChatTemplate
    from llava_kit.templates.image_position import ImagePosition

Interface = Literal["simple", "chat"]
RESULTS_FILE = "results.json"
REVIEWS_FILE = "judge_reviews.jsonl"
# The module whose scoring asks llava-kit's judge: a task whose YAML names it is judged.
JUDGED_SCORING = "llava_kit.lmms.llava_bench_task."


@dataclass(frozen=True)
class TaskRun:
    """Which tasks to run, from where, and how."""

    tasks: Sequence[str]
    include_path: Sequence[Path] = ()
    local_data: Path = Path("demo_data/lmms")  # llava-kit's local tasks, generated on first use
    limit: int | None = None  # documents per task
    batch_size: int = 16
    max_new_tokens: int = 128  # for tasks that set none
    interface: Interface = "simple"
    judge: JudgeSettings | None = None  # for judged tasks


@dataclass
class TaskResults:
    """lmms-eval's results (its ``results``, ``configs``, ``versions``, ..., and the
    ``judge`` when one scored), each task's samples, the numeric metrics as
    ``<task>/<metric>``, and the judge's reviews."""

    results: dict[str, Any]
    samples: dict[str, list[dict[str, Any]]]
    metrics: dict[str, float] = field(default_factory=dict)
    reviews: list[dict[str, Any]] = field(default_factory=list)

    def write(self, folder: Path) -> dict[str, Path]:
        """``results.json`` and ``samples_<task>.jsonl`` per task; their paths by name."""
        from lmms_eval.utils import handle_non_serializable

        folder.mkdir(parents=True, exist_ok=True)
        files = {"results": folder / RESULTS_FILE}
        atomic_write_text(files["results"], json.dumps(
            self.results, indent=2, default=handle_non_serializable, ensure_ascii=False) + "\n")
        for task, samples in self.samples.items():
            files[task] = folder / f"samples_{task}.jsonl"
            atomic_write_text(files[task], "".join(
                json.dumps(sample, default=handle_non_serializable, ensure_ascii=False) + "\n"
                for sample in samples))
        if self.reviews:
            files["judge"] = folder / REVIEWS_FILE
            atomic_write_text(files["judge"], "".join(
                json.dumps(review, ensure_ascii=False) + "\n" for review in self.reviews))
        return files


@dataclass(frozen=True)
class PreparedTasks:
    """lmms-eval's task index with every task checked, and the judge of the judged ones."""

    manager: Any
    judge: JudgeSession | None


def prepare_tasks(run: TaskRun) -> PreparedTasks:
    """Everything a user can get wrong about the tasks, found before the model is touched."""
    require_lmms_eval()
    from lmms_eval.tasks import TaskManager

    include = [_folder(path) for path in run.include_path]
    if any(task in LOCAL_TASKS for task in run.tasks):
        include.append(ensure_local_tasks(run.local_data))
    manager = TaskManager("WARNING", include_path=[str(path) for path in include] or None)
    _check_tasks(run, manager)
    judged = _judged_tasks(run.tasks, manager)
    if not judged:
        return PreparedTasks(manager, None)
    if run.judge is None:
        raise LlavaKitError(
            f"task {', '.join(repr(task) for task in judged)} is scored by a judge model, and "
            "no judge is set",
            hint="give --judge-url URL --judge-model MODEL (and --judge-key-env VAR when the "
            "server needs a key); in a recipe, the lmms_eval evaluation's judge_url, "
            "judge_model and judge_key_env. Any OpenAI-compatible server will do",
        )
    return PreparedTasks(manager, JudgeSession(run.judge))


def run_tasks(
    model: "LlavaModel", template: "ChatTemplate", run: TaskRun,
    image_position: "ImagePosition" = "image_first", prepared: PreparedTasks | None = None,
) -> TaskResults:
    from lmms_eval.evaluator import simple_evaluate

    from llava_kit.lmms.chat_model import LlavaKitChatLMM
    from llava_kit.lmms.model import LlavaKitLMM

    prepared = prepared if prepared is not None else prepare_tasks(run)
    model_class = LlavaKitChatLMM if run.interface == "chat" else LlavaKitLMM
    lm = model_class.for_model(model, template, image_position=image_position,
                               batch_size=run.batch_size, max_new_tokens=run.max_new_tokens)
    with _one_process(), _random_state_kept(), judging(prepared.judge):
        results = simple_evaluate(
            model=lm, tasks=list(run.tasks), limit=run.limit, batch_size=run.batch_size,
            task_manager=prepared.manager, bootstrap_iters=0, log_samples=True,
            verbosity="WARNING",
        )
    if results is None:
        raise LlavaKitError("lmms-eval returned no results", hint="run again with --debug")
    samples = results.pop("samples", {})
    reviews: list[dict[str, Any]] = []
    if prepared.judge is not None:
        results["judge"] = prepared.judge.summary()
        reviews = prepared.judge.records()
    return TaskResults(results, samples, flat_metrics(results), reviews)


def flat_metrics(results: dict[str, Any]) -> dict[str, float]:
    """Each task's numeric metrics as ``<task>/<metric>`` (``<metric>/<filter>`` for a
    filter other than lmms-eval's ``none``), without standard errors. The metric its
    benchmark reports comes first: grids show the first one as a cell's headline."""
    from llava_kit.lmms.reference import SOURCES

    metrics: dict[str, float] = {}
    for task, values in results.get("results", {}).items():
        headline = SOURCES[task].metric if task in SOURCES else None
        ordered = sorted(values.items(), key=lambda item: item[0].split(",")[0] != headline)
        for key, value in ordered:
            metric, _, filter_name = key.partition(",")
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if "_stderr" in metric or not numeric:
                continue
            name = metric if filter_name in ("", "none") else f"{metric}/{filter_name}"
            metrics[f"{task}/{name}"] = float(value)
    return metrics


def _folder(path: Path) -> Path:
    if not Path(path).is_dir():
        raise LlavaKitError(f"include path {path} is not a folder",
                            hint="give a folder holding lmms-eval task YAML files")
    return Path(path)


def _check_tasks(run: TaskRun, manager: Any) -> None:
    known = set(manager.all_tasks)
    unknown = [task for task in run.tasks if task not in known]
    if unknown:
        import lmms_eval

        package = Path(lmms_eval.__file__).parent
        own = [name for name, entry in manager.task_index.items()
               if str(entry.get("yaml_path", "")).startswith(str(package))]
        shipped = (f"the installed lmms-eval ships {len(own)} task files" if own else
                   "the installed lmms-eval ships no task files (its 0.7.0 wheel has none)")
        raise LlavaKitError(
            f"task {', '.join(repr(task) for task in unknown)} is not an lmms-eval task here: "
            f"{shipped}, and llava-kit's local tasks are {', '.join(LOCAL_TASKS)}",
            hint="name a task lmms-eval indexes, or add the folder holding its YAML with "
            "--include-path DIR (for lmms-eval's own tasks: the lmms_eval/tasks folder of its "
            "source)",
        )
    if run.limit is not None and run.limit % 2 and any("mme" in task for task in run.tasks):
        raise LlavaKitError(
            f"limit {run.limit} is odd: MME scores each image's yes and no question together",
            hint="give an even limit",
        )


def _judged_tasks(tasks: Sequence[str], manager: Any) -> list[str]:
    """The tasks whose YAML (its includes too) scores with llava-kit's judge."""
    from lmms_eval.utils import load_yaml_config

    judged = []
    for task in tasks:
        entry = manager.task_index.get(task, {})
        path = entry.get("yaml_path")
        if entry.get("type") != "task" or not isinstance(path, str):
            continue
        # Read as lmms-eval indexes: a function is kept as its YAML node, naming it.
        scoring = load_yaml_config(path, mode="simple").get("process_results")
        if str(getattr(scoring, "value", scoring)).startswith(JUDGED_SCORING):
            judged.append(task)
    return judged


@contextlib.contextmanager
def _one_process() -> Iterator[None]:
    names = ("RANK", "LOCAL_RANK", "WORLD_SIZE")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _random_state_kept() -> Iterator[None]:
    python_state, numpy_state = random.getstate(), numpy.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        random.setstate(python_state)
        numpy.random.set_state(numpy_state)
