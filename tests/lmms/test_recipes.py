"""The ``lmms_eval`` evaluator in recipes and grids: per epoch on the live model and at the
end, a plugin's connector included, its metrics in grid.md; refused early without the extra."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llava_kit.errors import DataError, RecipeError
from llava_kit.grid import GridExecutor, load_grid, plan_grid, write_grid_report
from llava_kit.grid.plan import cell_dir
from llava_kit.recipes import load_recipe
from llava_kit.tiny.recipe import tiny_recipe
from llava_kit.train.metrics import read_metrics

POPE = "llava_kit_pope/pope_f1_score"


def base_recipe(data: Path, local_tasks: Path) -> dict:
    raw = tiny_recipe(data)
    for stage in raw["stages"].values():
        stage["data"]["limit"] = 8
    raw["stages"]["finetune"]["eval_every_epoch"] = True
    raw["eval"] = {"lmms": {"name": "lmms_eval", "tasks": ["llava_kit_pope"], "limit": 4,
                            "batch_size": 2, "local_data": str(local_tasks)}}
    return raw


def test_a_grid_cell_carries_lmms_metrics_into_grid_md(
    lmms_data: Path, local_tasks: Path, tmp_path: Path
) -> None:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base_recipe(lmms_data, local_tasks)))
    grid_file = tmp_path / "grid.yaml"
    # Variants: the example plugin's connector, and a fusion connector.
    grid_file.write_text(yaml.safe_dump({"extends": "base.yaml", "name": "g", "variants": {
        "plugin": {"model.connector": "avgpool2x2_mlp"},
        "fusion": {"model.connector": "gated_xattn"}}}))
    grid, grid_dir = load_grid(grid_file), tmp_path / "out"
    records = GridExecutor(grid_file, grid_dir).run(plan_grid(grid, grid_dir, grid.cells))
    write_grid_report(grid, grid_dir)

    assert {r["cell"]: r["status"] for r in records} == {
        "baseline": "ok", "plugin": "ok", "fusion": "ok"}
    for record in records:
        metrics = record["metrics"]["lmms"]
        assert next(iter(metrics)) == POPE and 0.0 <= metrics[POPE] <= 1.0
        run = cell_dir(grid_dir, record["cell"])
        results = json.loads((run / "results" / "lmms_eval" / "lmms" / "results.json").read_text())
        assert results["n-samples"]["llava_kit_pope"]["effective"] == 4
        assert "## lmms-eval: lmms" in (run / "report.md").read_text()
        # eval_every_epoch: the live model after the epoch, its files under epoch_eval/.
        epochs = [r for r in read_metrics(run / "metrics.jsonl") if r.get("eval") == "lmms"]
        assert [(r["stage"], r["epoch"]) for r in epochs] == [("finetune", 1)]
        assert epochs[0][POPE] == metrics[POPE]
        assert (run / "epoch_eval" / "finetune-1" / "results" / "lmms_eval" / "lmms").is_dir()
    text = (grid_dir / "grid.md").read_text()
    assert "## lmms" in text and POPE in text
    assert "| plugin | model.connector=\"avgpool2x2_mlp\" |" in text


def test_without_the_extra_the_recipe_is_refused_with_the_install_command(
    lmms_data: Path, local_tasks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("llava_kit.lmms.evaluator.lmms_eval_missing", lambda: True)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(base_recipe(lmms_data, local_tasks)))
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    assert "eval.lmms" in str(caught.value)
    assert 'pip install "llava-kit[lmms]"' in str(caught.value)


def test_local_tasks_are_generated_in_the_real_schemas_and_never_over_foreign_files(
    local_tasks: Path, tmp_path: Path
) -> None:
    import datasets

    from llava_kit.lmms.local_tasks import ensure_local_tasks

    columns = {name: datasets.load_from_disk(str(local_tasks / name)).column_names
               for name in ("pope", "mme", "textvqa")}
    assert columns["pope"] == {"test": ["id", "question_id", "question", "answer",
                                        "image_source", "image", "category"]}
    assert columns["mme"] == {"test": ["question_id", "question", "answer", "category", "image"]}
    assert {"question_id", "question", "image", "answers", "ocr_tokens"} <= set(
        columns["textvqa"]["validation"])
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="holds no local lmms-eval tasks of llava-kit's"):
        ensure_local_tasks(foreign)
