"""Repeated sample ids and images that cannot be decoded, through the real CLI: found before
training and listed; under on_bad_sample: skip exactly the listed samples are left out."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from PIL import Image

from llava_kit.data.images import MAX_IMAGE_PIXELS

# Run first in the child: every stage's dataset ids, in order, appended to a file.
_RECORD_TRAINED_IDS = """
import json
import llava_kit.train.stage_setup as setup
_stage_dataset = setup.stage_dataset
def _recorded(ctx, model, name, stage):
    dataset = _stage_dataset(ctx, model, name, stage)
    with open({out!r}, "a") as handle:
        handle.write(json.dumps(list(dataset.sample_ids())) + "\\n")
    return dataset
setup.stage_dataset = _recorded
"""


def _skip_recipe(kit: SimpleNamespace, sqa: Path, case: Path, records: list[dict[str, Any]]) -> Path:
    raw = kit.llava_recipe(sqa, case, records)
    raw["runtime"]["on_bad_sample"] = "skip"
    raw["stages"]["pretrain"]["batch"] = {"global_size": 2, "micro_size": 1}
    return kit.save_recipe(case / "recipe.yaml", raw)


def _train(kit: SimpleNamespace, recipe: Path, case: Path) -> tuple[Any, list[str]]:
    trained = case / "trained_ids.jsonl"
    done = kit.run_cli(["run", str(recipe), "--no-eval"], case,
                       patch=_RECORD_TRAINED_IDS.format(out=str(trained)))
    ids = json.loads(trained.read_text().splitlines()[0]) if trained.exists() else []
    return done, ids


def _skipped(case: Path) -> list[tuple[str, str, str]]:
    rows = [json.loads(line) for line in (case / "run" / "skipped_samples.jsonl").read_text().splitlines()]
    return [(row["sample_id"], row["kind"], row["record"]) for row in rows]


def test_a_repeated_id_stops_the_run_before_its_directory_and_is_listed(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace
) -> None:
    records = kit.good_records(8)
    records[5]["id"] = "s2"
    recipe = kit.save_recipe(tmp_path / "recipe.yaml", kit.llava_recipe(sqa, tmp_path, records))
    results = kit.run_cli_cases(
        [("run", ["run", str(recipe), "--no-eval"], tmp_path),
         ("check", ["data", "check", str(recipe), "--fast"], tmp_path)], tmp_path,
    )
    listed = "stages.pretrain: sample 's2': record [5]: id already used by record [2]"
    run = results["run"]
    assert run["code"] == 2, run["stdout"] + run["stderr"]
    assert listed in run["stderr"] and str(tmp_path / "data.json") in run["stderr"]
    assert "on_bad_sample: skip" in run["stderr"]  # the hint says what else can be done
    assert "Traceback" not in run["stdout"] + run["stderr"]
    assert not (tmp_path / "run").exists()
    check = results["check"]
    assert check["code"] == 1, check["stdout"] + check["stderr"]
    assert check["stdout"].startswith("data check: 1 error(s), 0 warning(s); 1 bad sample(s) of 8")
    assert "sample ids used more than once (the first sample keeps the id) (1):" in check["stdout"]
    assert listed in check["stdout"]


def test_skip_drops_later_duplicates_and_never_a_good_sample_sharing_a_bad_ones_id(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace
) -> None:
    records = kit.good_records(8)
    records[3]["conversations"][1]["value"] = " "  # s3 itself is bad: empty answer
    records[5]["id"] = "s2"  # a good sample repeating a good id
    records[6]["id"] = "s1"  # a bad record (missing image, its reader drops it) repeating a good id
    records[6]["image"] = "missing.png"
    records[7]["id"] = "s3"  # a good sample repeating a bad id
    done, trained = _train(kit, _skip_recipe(kit, sqa, tmp_path, records), tmp_path)

    assert done.returncode == 0, done.stderr[-3000:]
    assert "skipping 4 bad sample(s) of 8 in stages.pretrain" in done.stderr
    assert trained == ["s0", "s1", "s2", "s4"]  # records 0, 1, 2 and 4, in file order
    assert _skipped(tmp_path) == [
        ("s1", "missing_image", "record [6]"),
        ("s2", "duplicate_id", "record [5]"),
        ("s3", "duplicate_id", "record [7]"),
        ("s1", "duplicate_id", "record [6]"),
        ("s3", "empty_answer", "record [3]"),
    ]
    summary = json.loads((tmp_path / "run" / "checkpoints" / "pretrain" / "summary.json").read_text())
    assert summary["samples"] == 4


def test_skip_decodes_every_image_first_and_leaves_out_the_unusable_ones(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace
) -> None:
    records = kit.good_records(8)
    records[5]["image"] = "3.png"  # two samples share the corrupt image
    recipe = _skip_recipe(kit, sqa, tmp_path, records)
    (tmp_path / "images" / "3.png").write_bytes(b"garbage")
    side = int(MAX_IMAGE_PIXELS ** 0.5) + 1
    Image.new("1", (side, side)).save(tmp_path / "images" / "4.png")  # a decompression bomb
    done, trained = _train(kit, recipe, tmp_path)

    assert done.returncode == 0, done.stderr[-3000:]
    assert "decoding images of stages.pretrain" in done.stderr and "images/s" in done.stderr
    assert "skipping 3 bad sample(s) of 8 in stages.pretrain" in done.stderr
    assert trained == ["s0", "s1", "s2", "s6", "s7"]
    assert _skipped(tmp_path) == [
        ("s3", "unreadable_image", "record [3]"),
        ("s4", "unreadable_image", "record [4]"),
        ("s5", "unreadable_image", "record [5]"),
    ]


def test_a_corrupt_image_met_in_a_loader_worker_is_one_screen_naming_sample_and_file(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace
) -> None:
    raw = kit.llava_recipe(sqa, tmp_path)
    raw["runtime"]["num_workers"] = 1
    raw["stages"]["pretrain"]["batch"] = {"global_size": 2, "micro_size": 1}
    recipe = kit.save_recipe(tmp_path / "recipe.yaml", raw)
    image = tmp_path / "images" / "3.png"
    image.write_bytes(b"garbage")  # the default policy does not decode images up front
    done = kit.run_cli(["run", str(recipe), "--no-eval"], tmp_path)

    assert done.returncode == 2, done.stderr[-3000:]
    assert f"error: sample 's3': cannot read image {image}: cannot identify image file" in done.stderr
    assert "hint: re-download or remove the file" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "DataLoader worker" not in done.stderr


def test_repeated_ids_in_eval_data_stop_even_a_skipping_run(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace
) -> None:
    problems = json.loads((sqa / "problems.json").read_text())
    splits = json.loads((sqa / "pid_splits.json").read_text())
    text_only = [pid for pid in splits["test"] if not problems[pid].get("image")][:3]
    splits["test"] = [text_only[0], text_only[1], text_only[0], text_only[2]]
    root = tmp_path / "sqa"
    root.mkdir()
    (root / "problems.json").write_text(json.dumps(problems))
    (root / "pid_splits.json").write_text(json.dumps(splits))
    raw = kit.llava_recipe(sqa, tmp_path)
    raw["runtime"]["on_bad_sample"] = "skip"
    raw["eval"] = {"sqa": {"name": "scienceqa", "root": str(root), "split": "test", "limit": 4}}
    recipe = kit.save_recipe(tmp_path / "recipe.yaml", raw)
    result = kit.run_cli_cases([("run", ["run", str(recipe)], tmp_path)], tmp_path)["run"]

    assert result["code"] == 2, result["stdout"] + result["stderr"]
    # scienceqa does not say where a sample is in its files: its place among the loaded ones.
    assert (f"eval.sqa: sample {text_only[0]!r}: loaded sample [2]: id already used by loaded "
            "sample [0]") in result["stderr"]
    assert "Traceback" not in result["stdout"] + result["stderr"]
    assert not (tmp_path / "run").exists()
