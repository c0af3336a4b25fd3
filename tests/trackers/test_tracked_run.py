"""A tiny run logged to TensorBoard, W&B (offline) and MLflow (a local file store), then
resumed from its last step checkpoint as after a crash. Each tool's own reader finds the
loss of every step once, the stages end to end on one axis; two trackers that fail are one
warning each per start, and the run finishes."""

from __future__ import annotations

import json
import logging
import shutil
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from llava_kit.pipeline import run_recipe
from llava_kit.plugins import hookimpl
from llava_kit.plugins.registry import build_registry
from llava_kit.recipes import recipe_to_yaml, validate_recipe
from llava_kit.trackers import Point, Tracker, TrackerRun
from llava_kit.train.metrics import read_metrics
from llava_kit.train.report import loss_series
from llava_kit.train.run_dir import RunDir

pytestmark = pytest.mark.slow


class ServerDown(Tracker):
    """Cannot reach its server."""

    def start(self, run: TrackerRun) -> bool:
        raise ConnectionError("the tracking server refused the connection")


class FailsToLog(Tracker):
    """Starts, then fails at every point."""

    def start(self, run: TrackerRun) -> bool:
        return False

    def log(self, point: Point) -> None:
        raise RuntimeError("lost the connection")


class BrokenTrackers:
    @hookimpl
    def register_trackers(self, register: Any) -> None:
        register("server_down", ServerDown)
        register("fails_to_log", FailsToLog)


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@dataclass
class Tracked:
    run_dir: Path
    mlflow_uri: str
    evaluations: dict[str, dict[str, float]]
    warnings: list[str] = field(default_factory=list)

    def expected_losses(self) -> dict[int, float]:
        """metrics.jsonl's loss per step, on the run's axis (pretrain 1-2, finetune 3-4)."""
        records = read_metrics(RunDir(self.run_dir).metrics)
        pretrain, finetune = loss_series(records, "pretrain"), loss_series(records, "finetune")
        assert [step for step, _ in pretrain] == [1, 2] and [s for s, _ in finetune] == [1, 2]
        return {**dict(pretrain), **{2 + step: loss for step, loss in finetune}}


@pytest.fixture(scope="module")
def tracked(
    tracker_data: Path, two_step_recipe: Callable[[list[Any]], dict[str, Any]],
    offline_trackers: Path, tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Tracked]:
    root = tmp_path_factory.mktemp("tracked")
    uri = (root / "mlruns").as_uri()
    raw = two_step_recipe([
        "tensorboard", {"name": "wandb", "project": "llava-kit-tests", "mode": "offline"},
        {"name": "mlflow", "tracking_uri": uri}, "server_down", "fails_to_log",
    ])
    raw["stages"]["finetune"]["eval_every_epoch"] = True
    raw["eval"] = {"test": {"name": "scienceqa", "root": str(tracker_data), "split": "test",
                            "prompt_format": "QCM-A", "max_new_tokens": 2, "limit": 4}}
    registry = build_registry(extra_plugins=[(BrokenTrackers(), "broken-trackers")])
    recipe = validate_recipe(raw, registry=registry)
    run_dir, yaml_text = root / "run", recipe_to_yaml(recipe)
    warnings = Warnings()
    logging.getLogger("llava_kit").addHandler(warnings)
    try:
        run_recipe(recipe, recipe_yaml=yaml_text, run_dir=run_dir)
        # As after a crash between finetune's step-1 checkpoint and its end: the resumed run
        # trains (and logs) step 2 again.
        finetune = RunDir(run_dir).stage("finetune")
        shutil.rmtree(finetune.final)
        finetune.summary.unlink()
        result = run_recipe(recipe, recipe_yaml=yaml_text, run_dir=run_dir, resume=True)
    finally:
        logging.getLogger("llava_kit").removeHandler(warnings)
    yield Tracked(run_dir, uri, result.metrics, warnings.messages)


def test_metrics_jsonl_keeps_every_record_the_resumed_step_twice(tracked: Tracked) -> None:
    records = read_metrics(RunDir(tracked.run_dir).metrics)
    finetune_steps = [r["step"] for r in records if r["stage"] == "finetune" and "loss" in r]
    assert finetune_steps == [1, 2, 2]


def test_tensorboard_events_hold_the_loss_of_every_step_once(tracked: Tracked) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = RunDir(tracked.run_dir).tensorboard
    assert len(list(folder.glob("events.out.tfevents.*"))) >= 2  # the resumed run added one
    # Without purging, a step written twice would show as two events.
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0},
                              purge_orphaned_data=False)
    events.Reload()
    logged = {e.step: e.value for tag in ("pretrain/loss", "finetune/loss")
              for e in events.Scalars(tag)}
    steps = [e.step for tag in ("pretrain/loss", "finetune/loss") for e in events.Scalars(tag)]
    assert steps == [1, 2, 3, 4]
    assert logged == pytest.approx(tracked.expected_losses(), rel=1e-6)  # float32 in events
    assert [e.step for e in events.Scalars("finetune/eval/test/acc")] == [4]
    assert events.Scalars("eval/test/acc")[-1].value == pytest.approx(
        tracked.evaluations["test"]["acc"])
    tags = events.Tags()
    assert "loss" in tags["images"]
    assert {"recipe/text_summary", "report.md/text_summary"} <= set(tags["tensors"])


def wandb_records(path: Path) -> Iterator[Any]:
    """The records of a .wandb file: a 7-byte header (":W&B", magic, version), then
    32 KiB blocks of chunks (CRC-32 of type and data, length, type: full, first, middle or
    last), each record a protobuf ``Record``."""
    from wandb.proto.wandb_internal_pb2 import Record

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, position, pending = 32768, 7, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        checksum, length, kind = struct.unpack("<IHB", data[position:position + 7])
        chunk = data[position + 7:position + 7 + length]
        position += 7 + length
        if kind == 0:
            continue
        assert zlib.crc32(bytes([kind]) + chunk) == checksum, f"{path}: damaged chunk"
        pending += chunk
        if kind in (1, 4):  # a whole record, or the last chunk of one
            record = Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _key(item: Any) -> str:
    return "/".join(item.nested_key) or item.key


def test_wandb_offline_run_holds_the_same_history_once_and_the_results(tracked: Tracked) -> None:
    files = sorted(RunDir(tracked.run_dir).wandb.glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2  # the first start and the resumed one
    runs, history, summary, saved = [], [], {}, set()
    for path in files:
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                runs.append(record.run)
            elif kind == "history":
                values = {_key(i): json.loads(i.value_json) for i in record.history.item}
                history.append(values)
            elif kind == "summary":
                summary.update({_key(i): json.loads(i.value_json) for i in record.summary.update})
            elif kind == "files":
                saved.update(file.path for file in record.files.files)
    assert {run.run_id for run in runs} == {runs[0].run_id}  # the resumed start reopened it
    assert runs[0].project == "llava-kit-tests" and runs[0].display_name == "tiny"
    config = {item.key: json.loads(item.value_json) for item in runs[0].config.update}
    assert list(config["stages"]) == ["pretrain", "finetune"]
    losses = [(row["_step"], row[key]) for row in history
              for key in ("pretrain/loss", "finetune/loss") if key in row]
    assert [step for step, _ in losses] == [1, 2, 3, 4]
    assert dict(losses) == pytest.approx(tracked.expected_losses())
    assert summary["eval/test/acc"] == pytest.approx(tracked.evaluations["test"]["acc"])
    assert summary["summary/finetune/steps"] == 2
    assert {"loss.png", "report.md", "recipe.resolved.yaml"} <= saved
    assert any(row.get("files/loss/_type") == "image-file" for row in history)  # loss.png


def test_mlflow_run_holds_params_metrics_once_and_artifacts(tracked: Tracked) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracked.mlflow_uri)
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1  # the resumed start continued the run
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "tiny"
    assert run.data.params["stages.finetune.optimizer.lr"] == "0.005"
    assert run.data.params["model.connector.name"] == "mlp2x_gelu"
    history = [(m.step, m.value) for tag in ("pretrain/loss", "finetune/loss")
               for m in client.get_metric_history(run.info.run_id, tag)]
    assert [step for step, _ in history] == [1, 2, 3, 4]
    assert dict(history) == pytest.approx(tracked.expected_losses())
    assert run.data.metrics["eval/test/acc"] == pytest.approx(tracked.evaluations["test"]["acc"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"loss.png", "report.md", "recipe.resolved.yaml"} <= artifacts


def test_failing_trackers_warn_once_per_start_and_never_stop_the_run(tracked: Tracked) -> None:
    assert RunDir(tracked.run_dir).report.is_file() and tracked.evaluations["test"]
    down = [m for m in tracked.warnings if m.startswith("tracker server_down ")]
    failing = [m for m in tracked.warnings if m.startswith("tracker fails_to_log ")]
    assert len(down) == len(failing) == 2  # the first start and the resumed one
    assert "ConnectionError: the tracking server refused the connection" in down[0]
    assert "RuntimeError: lost the connection" in failing[0]
    assert all("the run goes on without it" in m for m in down + failing)
    others = [m for m in tracked.warnings if m not in down + failing]
    assert not [m for m in others if m.startswith("tracker ")], others
