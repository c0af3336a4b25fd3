"""--resume continues the run that was started: a recipe that would compute something else is
refused through the real CLI, before anything in the run directory changes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, sqa: Path, kit: SimpleNamespace) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("resume_guard")
    recipe = kit.save_recipe(folder / "recipe.yaml", kit.llava_recipe(sqa, folder))
    done = kit.run_cli(["run", str(recipe), "--no-eval"], folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, recipe


@pytest.mark.parametrize("field, value", [
    ("stages.pretrain.optimizer.lr", "0.5"),
    ("stages.pretrain.batch.global_size", "4"),
    ("runtime.seed", "7"),
])
def test_resume_with_a_changed_recipe_is_refused(
    finished: tuple[Path, Path], kit: SimpleNamespace, field: str, value: str
) -> None:
    folder, recipe = finished
    before = kit.snapshot(folder / "run")
    done = kit.run_cli(["run", str(recipe), "--no-eval", "--resume", "--set", f"{field}={value}"], folder)
    shown = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2, shown
    assert "--resume: the recipe differs from the run's" in shown and f"{field}:" in shown
    assert "Traceback" not in shown
    assert kit.snapshot(folder / "run") == before


def test_resume_may_change_how_the_run_is_carried_out(
    finished: tuple[Path, Path], kit: SimpleNamespace
) -> None:
    folder, recipe = finished
    done = kit.run_cli(["run", str(recipe), "--no-eval", "--resume", "--set", "runtime.log_every=1"], folder)
    assert done.returncode == 0, done.stderr[-3000:]
