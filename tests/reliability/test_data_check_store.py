"""The data check read from a stage's token store reports exactly what checking the loaded
samples one by one reports, and a run tokenizes its data once for the check and the
dataset together."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from llava_kit.data.token_store import cache as cache_module
from llava_kit.data.token_store.build import BuildJob
from llava_kit.datacheck import check as check_module
from llava_kit.datacheck import check_recipe
from llava_kit.recipes import validate_recipe
from llava_kit.train.run import train_stages, training_run


def _every_kind_of_problem(kit: SimpleNamespace, sqa: Path, case: Path) -> dict:
    records = kit.good_records(12)
    for index in range(8, 12):  # the case has eight images
        records[index]["image"] = f"{index - 5}.png"
    records[1]["image"] = "missing.png"
    records[2]["image"] = "../../etc/hostname"
    records[3]["conversations"] = records[3]["conversations"][:1]
    records[4]["conversations"][0]["value"] = "<image>\n<image>\nWhat colour?"
    records[5]["conversations"][1]["value"] = ""
    records[6]["note"] = "kept by the annotator"
    records[7]["conversations"][1]["value"] = "It is blue.</s> And red."
    records[8]["id"] = "s2"  # a good record repeating the id of a dropped one
    records[9]["id"] = "s0"  # ... and of a loaded one
    records[10]["conversations"][0]["value"] = "<image>\n" + "Look closely. " * 80
    del records[11]["image"]  # text only
    records[11]["conversations"][0]["value"] = "What colour is the sky?"
    raw = kit.llava_recipe(sqa, case, records)
    raw["runtime"]["token_store"] = str(case / "tokens")
    (case / "images" / "0.png").write_bytes(b"not an image at all")
    return raw


@pytest.mark.parametrize("decode", [False, True])
def test_the_stored_check_is_the_sample_by_sample_check(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, decode: bool,
) -> None:
    recipe = validate_recipe(_every_kind_of_problem(kit, sqa, tmp_path))
    stored = check_recipe(recipe, decode_images=decode)
    assert len(list((tmp_path / "tokens").glob("*/key.json"))) == 1
    monkeypatch.setattr(check_module, "stage_token_store", lambda *args: None)
    direct = check_recipe(recipe, decode_images=decode)
    assert stored.problems == direct.problems
    assert stored.samples == direct.samples
    kinds = {p.kind for p in direct.problems}
    assert {"missing_image", "outside_image_root", "no_answer", "image_markers", "empty_answer",
            "unknown_field", "stop_in_answer", "duplicate_id", "truncated"} <= kinds
    assert ("unreadable_image" in kinds) == decode


def test_a_run_tokenizes_once_and_a_second_run_not_at_all(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace, monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = kit.llava_recipe(sqa, tmp_path)
    raw["stages"]["pretrain"]["batch"] = {"global_size": 4, "micro_size": 2}
    raw["runtime"]["token_store"] = str(tmp_path / "tokens")
    recipe = validate_recipe(raw)
    builds: list[str] = []
    real = cache_module.build_store

    def counted(job: BuildJob, folder: Path, processes: int | None = None) -> None:
        builds.append(job.label)
        real(job, folder, processes)

    monkeypatch.setattr(cache_module, "build_store", counted)
    losses = []
    for run in ("first", "second"):
        with training_run(recipe, recipe_yaml=yaml.safe_dump(raw), run_dir=tmp_path / run) as (
            ctx, model,
        ):
            train_stages(ctx, model)
        metrics = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        losses.append([json.loads(line)["loss"] for line in metrics if '"loss"' in line])
    assert builds == ["stages.pretrain"]  # the check built it, the dataset and run 2 read it
    assert losses[0] == losses[1] and losses[0]
