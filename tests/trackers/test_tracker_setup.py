"""Trackers without training: the registry, the recipe field (names, options, missing
packages as one screen naming the field), the run's one step axis, one value per step, and
a tracker's thread (history sent or held, a slow tracker left behind)."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from llava_kit.cli.validate_cmd import summary_lines
from llava_kit.errors import RecipeError
from llava_kit.grid.keys import cell_key
from llava_kit.plugins import hookimpl
from llava_kit.plugins.registry import build_registry
from llava_kit.recipes import recipe_to_yaml, validate_recipe
from llava_kit.recipes.changes import check_resume_recipe
from llava_kit.trackers import Point, Tracker, TrackerRun
from llava_kit.trackers.background import BackgroundTracker
from llava_kit.trackers.step_filter import StepFilter
from llava_kit.trackers.timeline import Timeline
from llava_kit.train.run_dir import RunDir


class NeedsMissingModule(Tracker):
    """Needs a module nobody installed."""

    requires = ("llava_kit_no_such_tracker_module",)
    install = 'pip install "llava-kit-no-such-tracker"'


class Plugin:
    @hookimpl
    def register_trackers(self, register: Any) -> None:
        register("needs_missing", NeedsMissingModule)


@pytest.fixture(scope="module")
def registry() -> Any:
    return build_registry(extra_plugins=[(Plugin(), "test-trackers")])


def test_built_in_trackers_are_registered_like_plugins(registry: Any) -> None:
    for name in ("jsonl", "tensorboard", "wandb", "mlflow"):
        entry = registry.get("tracker", name)
        assert entry.package == "llava-kit" and issubclass(entry.component, Tracker)
    assert registry.get("tracker", "needs_missing").package == "test-trackers"


def _problems(registry: Any, raw: dict[str, Any]) -> str:
    with pytest.raises(RecipeError) as caught:
        validate_recipe(raw, registry=registry)
    return caught.value.message


def test_the_recipe_names_trackers_with_their_options(
    registry: Any, two_step_recipe: Callable[[list[Any]], dict[str, Any]],
) -> None:
    raw = two_step_recipe(["tensorboard", {"name": "wandb", "project": "p", "mode": "offline"}])
    recipe = validate_recipe(raw, registry=registry)
    assert [spec.name for spec in recipe.runtime.trackers] == ["tensorboard", "wandb"]
    assert recipe.runtime.trackers[1].options.mode == "offline"
    assert summary_lines(recipe)[-1] == "trackers tensorboard, wandb"
    # The resolved recipe loads back as it was. A resumed run may be given other trackers; a
    # grid cell given trackers runs again (its stages reused) to log to them.
    assert validate_recipe(yaml.safe_load(recipe_to_yaml(recipe)), registry=registry) == recipe
    untracked = validate_recipe(two_step_recipe([]), registry=registry)
    check_resume_recipe(recipe_to_yaml(untracked), recipe_to_yaml(recipe), "r.yaml")
    assert cell_key(recipe) != cell_key(untracked)

    message = _problems(registry, two_step_recipe([
        "tensorbord", {"name": "wandb", "mode": "ofline"},
        {"name": "mlflow", "tracking_uri": "https://me:secret@mlflow.example.org"},
    ]))
    assert "runtime.trackers[0]: unknown tracker 'tensorbord'" in message
    assert "did you mean 'tensorboard'?" in message
    assert "runtime.trackers[1].mode: must be one of 'online', 'offline' or 'disabled'" in message
    assert "runtime.trackers[2].tracking_uri: holds credentials" in message
    assert "secret" not in message
    twice = _problems(registry, two_step_recipe(["tensorboard", "mlflow", "tensorboard"]))
    assert "runtime.trackers[2]: 'tensorboard' is listed twice" in twice


def test_a_tracker_whose_package_is_missing_fails_validation_with_the_pip_command(
    registry: Any, two_step_recipe: Callable[[list[Any]], dict[str, Any]],
) -> None:
    message = _problems(registry, two_step_recipe([{"name": "needs_missing"}]))
    assert ("runtime.trackers[0].name: tracker 'needs_missing' needs "
            "llava_kit_no_such_tracker_module, which is not installed; install it with: "
            'pip install "llava-kit-no-such-tracker"') in message


def test_validate_names_the_field_and_the_extra_on_one_screen(
    two_step_recipe: Callable[[list[Any]], dict[str, Any]], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:
    from llava_kit.cli.app import main

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(two_step_recipe(["wandb"]), sort_keys=False))
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if wandb were not installed
    monkeypatch.setattr(sys, "argv", ["llava-kit", "validate", str(path)])
    with pytest.raises(SystemExit) as exit_code:
        main()
    err = " ".join(capfd.readouterr().err.split())
    assert exit_code.value.code == 2
    assert "Traceback" not in err and err.startswith("error:")
    assert ("runtime.trackers[0]: tracker 'wandb' needs wandb, which is not installed; "
            'install it with: pip install "llava-kit[wandb]"') in err


def _timeline(finished: dict[str, int]) -> Timeline:
    return Timeline(["pretrain", "finetune"], finished.get)


def test_the_stages_lie_end_to_end_on_one_step_axis() -> None:
    timeline = _timeline({"pretrain": 5})
    assert timeline.point({"stage": "pretrain", "step": 2, "loss": 1.5, "time": 9.0}).values \
        == {"pretrain/loss": 1.5}
    point = timeline.point({"stage": "finetune", "step": 3, "epoch": 0.5, "loss": 0.5,
                            "lr": 1e-3, "flag": True})
    assert point.step == 8
    assert point.values == {"finetune/epoch": 0.5, "finetune/loss": 0.5, "finetune/lr": 1e-3}
    evaluation = timeline.point({"stage": "finetune", "epoch": 1, "eval": "test", "acc": 75.0})
    assert (evaluation.step, evaluation.values) == (8, {"finetune/eval/test/acc": 75.0})
    assert timeline.point({"stage": "gone", "step": 1, "loss": 1.0}).values == {}
    # A stage without its summary yet counts the highest step seen of it.
    unfinished = _timeline({})
    unfinished.point({"stage": "pretrain", "step": 4, "loss": 1.0})
    assert unfinished.point({"stage": "finetune", "step": 1, "loss": 1.0}).step == 5


def test_one_value_per_step_and_no_step_back() -> None:
    steps = StepFilter()
    assert steps.admit(Point(4, {"a": 1.0}, {})) == Point(4, {"a": 1.0}, {})
    assert steps.admit(Point(4, {"a": 2.0, "b": 3.0}, {})) == Point(4, {"b": 3.0}, {})
    assert steps.admit(Point(3, {"c": 1.0}, {})) is None
    assert steps.admit(Point(4, {"a": 5.0}, {})) is None
    assert steps.admit(Point(5, {"a": 6.0}, {})) == Point(5, {"a": 6.0}, {})


class Recorder(Tracker):
    """Keeps what it is sent."""

    def __init__(self, continues: bool) -> None:
        super().__init__(Tracker.Options())
        self.continues = continues
        self.steps: list[int] = []
        self.finished: list[bool] = []

    def start(self, run: TrackerRun) -> bool:
        run.state["id"] = "run-1"
        return self.continues

    def log(self, point: Point) -> None:
        self.steps.append(point.step)

    def finish(self, ok: bool) -> None:
        self.finished.append(ok)


def _run(tmp_path: Path) -> TrackerRun:
    return TrackerRun("tiny", None, RunDir(tmp_path), {})


def test_a_new_tracker_run_is_sent_the_history_a_continued_one_only_what_is_new(
    tmp_path: Path,
) -> None:
    history = [Point(step, {"pretrain/loss": 1.0}, {}) for step in (1, 2, 3)]
    for continues, expected in ((False, [1, 2, 3, 4]), (True, [4])):
        recorder, saved = Recorder(continues), []
        tracker = BackgroundTracker("rec", recorder, _run(tmp_path), history, saved.append)
        tracker.log(Point(3, {"pretrain/loss": 9.0}, {}))  # a resumed step, logged again
        tracker.log(Point(4, {"pretrain/loss": 1.0}, {}))
        tracker.close(ok=True)
        assert recorder.steps == expected and recorder.finished == [True]
        assert saved == [{"id": "run-1"}]


def test_a_tracker_that_hangs_is_left_behind_with_one_warning_and_forgotten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()

    class Hangs(Recorder):
        def log(self, point: Point) -> None:
            release.wait(30)

    saved: list[dict] = []
    tracker = BackgroundTracker("hangs", Hangs(False), _run(tmp_path), [], saved.append)
    with caplog.at_level(logging.WARNING, logger="llava_kit"):
        tracker.log(Point(1, {"loss": 1.0}, {}))
        tracker.close(ok=True, timeout=0.2)
        tracker.log(Point(2, {"loss": 1.0}, {}))  # dropped: it is out of the run
    release.set()
    assert tracker.failed
    assert saved == [{"id": "run-1"}, {}]  # forgotten: the next start opens a new tool run
    assert [r.getMessage() for r in caplog.records] == [
        "tracker hangs stopped logging: it did not finish within 0.2 s; what it had not sent "
        "yet is missing from it; the run goes on without it"]
