"""The run directory layout RunDir and StageDir produce: the names existing runs use."""

from __future__ import annotations

from pathlib import Path

import pytest

from llava_kit.errors import LlavaKitError
from llava_kit.train.checkpoint import COMPLETE_MARKER, save_checkpoint
from llava_kit.train.run_dir import RunDir, StageDir


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def test_run_files_sit_at_the_root(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    assert {
        name: _relative(getattr(run, name), tmp_path)
        for name in ("resolved_recipe", "provenance", "metrics", "report", "loss_plot",
                     "skipped_samples", "results")
    } == {
        "resolved_recipe": "recipe.resolved.yaml",
        "provenance": "provenance.json",
        "metrics": "metrics.jsonl",
        "report": "report.md",
        "loss_plot": "loss.png",
        "skipped_samples": "skipped_samples.jsonl",
        "results": "results",
    }
    assert _relative(run.epoch_eval("finetune", 3), tmp_path) == "epoch_eval/finetune-3"


def test_stage_folders_sit_under_checkpoints(tmp_path: Path) -> None:
    stage = RunDir(tmp_path).stage("pretrain")
    assert stage == StageDir(tmp_path / "checkpoints" / "pretrain")
    assert _relative(stage.path, tmp_path) == "checkpoints/pretrain"
    assert _relative(stage.final, tmp_path) == "checkpoints/pretrain/final"
    assert _relative(stage.connector, tmp_path) == "checkpoints/pretrain/connector.safetensors"
    assert _relative(stage.summary, tmp_path) == "checkpoints/pretrain/summary.json"
    assert stage.finished_parts == (stage.final, stage.connector, stage.summary)


def test_a_stage_is_finished_only_with_the_final_checkpoint_marker(tmp_path: Path) -> None:
    stage = RunDir(tmp_path).stage("pretrain")
    assert not stage.is_finished() and not stage.has_summary()
    stage.final.mkdir(parents=True)
    (stage.connector).write_bytes(b"x")
    stage.summary.write_text("{}")
    assert not stage.is_finished(), "a final folder without its marker is not finished"
    assert stage.has_summary()
    (stage.final / COMPLETE_MARKER).write_text("complete\n")
    assert stage.is_finished()


def test_a_saved_final_checkpoint_finishes_the_stage(tmp_path: Path) -> None:
    stage = RunDir(tmp_path).stage("finetune")
    save_checkpoint(stage.final, weights={}, optimizer=None, trainer_state={"stage": "finetune"})
    assert stage.is_finished()
    assert not RunDir(tmp_path).stage("pretrain").is_finished()


def test_latest_picks_the_newest_run(tmp_path: Path) -> None:
    for stamp in ("20240102-030405", "20240301-000000", "20231231-235959"):
        (tmp_path / "tiny" / stamp).mkdir(parents=True)
    (tmp_path / "tiny" / "20991231-000000").write_text("a file, not a run")
    (tmp_path / "other" / "20250101-000000").mkdir(parents=True)
    assert RunDir.latest("tiny", tmp_path) == RunDir(tmp_path / "tiny" / "20240301-000000")


@pytest.mark.parametrize("make_folder", [False, True])
def test_latest_without_runs_is_an_error_with_a_hint(tmp_path: Path, make_folder: bool) -> None:
    if make_folder:
        (tmp_path / "tiny").mkdir()
    with pytest.raises(LlavaKitError) as error:
        RunDir.latest("tiny", tmp_path)
    assert "no earlier run of 'tiny'" in str(error.value)
    assert str(tmp_path / "tiny") in str(error.value)
    assert error.value.hint is not None and "--output-dir" in error.value.hint


def test_the_default_run_dir_is_under_runs() -> None:
    run = RunDir.default("tiny")
    assert run.root.parent == Path("runs/tiny")
    assert len(run.root.name) == len("20240102-030405")
