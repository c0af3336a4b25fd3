"""`llava-kit data check`, the fast check at the start of `run`, and on_bad_sample: skip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from llava_kit.constants import IGNORE_INDEX, IMAGE_TOKEN_ID
from llava_kit.data.formats.problems import collecting_problems
from llava_kit.data.formats.scienceqa import ScienceQAFormat, ScienceQAOptions
from llava_kit.datacheck import check_recipe
from llava_kit.datacheck.budget import visual_tokens_per_image
from llava_kit.datacheck.policy import preflight
from llava_kit.datacheck.samples import first_answer_position
from llava_kit.errors import DataError
from llava_kit.recipes import validate_recipe


def _five_kinds_of_problems(case: Path) -> None:
    records = json.loads((case / "data.json").read_text())
    records[1]["image"] = "missing.png"
    records[2]["image"] = "../../etc/hostname"
    records[3]["conversations"] = records[3]["conversations"][:1]
    records[4]["conversations"][0]["value"] = "<image>\n<image>\nWhat colour?"
    records[5]["conversations"][1]["value"] = ""
    records[6]["note"] = "kept by the annotator"
    (case / "data.json").write_text(json.dumps(records))
    (case / "images" / "0.png").write_bytes(b"not an image at all")


def test_new_user_gets_one_report_listing_every_problem(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace
) -> None:
    recipe = kit.save_recipe(tmp_path / "recipe.yaml", kit.llava_recipe(sqa, tmp_path))
    _five_kinds_of_problems(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "llava_kit.cli", "data", "check", str(recipe)], cwd=tmp_path,
        env=kit.child_env(), capture_output=True, text=True, timeout=600,
    )
    out = done.stdout
    assert done.returncode == 1, done.stderr
    assert out.startswith("data check: 6 error(s), 1 warning(s); 6 bad sample(s) of 8 checked")
    expected = {
        "unreadable or corrupt image files (1):": "sample 's0': cannot read image",
        "missing images (1):": "sample 's1': image 'missing.png' not found",
        "images outside the image root (1):": "sample 's2': image '../../etc/hostname' resolves",
        "conversations without an assistant answer (1):": "sample 's3': the last turn",
        "<image> markers that do not match the images (1):": "sample 's4': 2 <image> marker(s)",
        "empty answers (1):": "sample 's5': an assistant answer is empty",
        "unknown fields in records (warnings: the readers ignore them) (1):":
            "sample 's6': record [6]: unknown field(s) 'note'",
    }
    for heading, line in expected.items():
        assert heading in out, heading
        assert line in out, line
    assert "Traceback" not in done.stderr


def test_fast_path_checks_existence_only_and_the_full_check_decodes(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace
) -> None:
    recipe = validate_recipe(kit.llava_recipe(sqa, tmp_path))
    (tmp_path / "images" / "3.png").write_bytes(b"garbage")
    assert check_recipe(recipe, decode_images=False).errors == []
    errors = check_recipe(recipe, decode_images=True).errors
    assert [(p.kind, p.sample_id) for p in errors] == [("unreadable_image", "s3")]


def test_an_answer_holding_the_stop_string_is_a_bad_sample_named_by_id(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace
) -> None:
    records = kit.good_records(8)
    records[2]["conversations"][1]["value"] = "It is blue.</s> And red."
    raw = kit.llava_recipe(sqa, tmp_path, records)  # the v1 template: answers close with </s>
    report = check_recipe(validate_recipe(raw), decode_images=False)
    assert [(p.kind, p.sample_id) for p in report.errors] == [("stop_in_answer", "s2")]
    assert "answer 1 contains '</s>'" in report.errors[0].message
    assert "answers holding the text that ends an answer" in report.render()
    assert report.ids_to_drop("stages.pretrain") == {"s2"}  # what on_bad_sample: skip leaves out
    with pytest.raises(DataError, match="sample 's2': answer 1 contains"):
        preflight(validate_recipe(raw))


def test_skip_policy_trains_on_the_rest_and_lists_what_it_skipped(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace
) -> None:
    raw = kit.llava_recipe(sqa, tmp_path)
    raw["runtime"]["on_bad_sample"] = "skip"
    raw["stages"]["pretrain"]["batch"] = {"global_size": 2, "micro_size": 1}
    records = json.loads((tmp_path / "data.json").read_text())
    records[1]["image"] = "missing.png"
    records[5]["conversations"][1]["value"] = " "
    (tmp_path / "data.json").write_text(json.dumps(records))
    recipe = kit.save_recipe(tmp_path / "recipe.yaml", raw)
    result = kit.run_cli_cases([("skip", ["run", str(recipe), "--no-eval"], tmp_path)], tmp_path)["skip"]
    assert result["code"] == 0, result["stderr"]
    assert "skipping 2 bad sample(s) of 8 in stages.pretrain" in result["stderr"]
    run = tmp_path / "run"
    skipped = [json.loads(line) for line in (run / "skipped_samples.jsonl").read_text().splitlines()]
    assert [(row["sample_id"], row["kind"], row["where"]) for row in skipped] == [
        ("s1", "missing_image", "stages.pretrain"), ("s5", "empty_answer", "stages.pretrain"),
    ]
    summary = json.loads((run / "checkpoints" / "pretrain" / "summary.json").read_text())
    assert summary["samples"] == 6  # one epoch over the six good samples


def test_first_answer_position_counts_visual_tokens() -> None:
    ids = [1, 5, IMAGE_TOKEN_ID, 7, 8, 9]
    labels = [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 8, 9]
    assert first_answer_position(ids, labels, visual_tokens=576) == 2 + 576 + 1
    assert first_answer_position(ids, labels, visual_tokens=1) == 4


def test_visual_tokens_come_from_configs_alone(sqa: Path, kit: SimpleNamespace) -> None:
    raw = kit.tiny_recipe(sqa)
    assert visual_tokens_per_image(validate_recipe(raw).model) == (32 // 8) ** 2
    raw["model"]["encoder"]["select_feature"] = "cls_patch"
    assert visual_tokens_per_image(validate_recipe(raw).model) == 16 + 1


def test_scienceqa_missing_images_are_collected_per_problem(sqa: Path, tmp_path: Path) -> None:
    options = ScienceQAOptions(root=str(sqa), split="train", image_root=str(tmp_path), limit=5)
    with collecting_problems() as found:
        samples = ScienceQAFormat(options).load()
    with_images = [pid for pid, problem in _split_problems(sqa, 5) if problem.get("image")]
    assert sorted(p.sample_id for p in found) == sorted(with_images)
    assert all("image not found under the image root" in p.message for p in found)
    assert len(samples) == 5 - len(with_images)


def test_the_scienceqa_evaluators_data_is_checked_like_a_stages(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace
) -> None:
    root = tmp_path / "sqa"
    root.mkdir()
    problems = json.loads((sqa / "problems.json").read_text())
    pids = json.loads((sqa / "pid_splits.json").read_text())["test"][:6]
    problems[pids[0]]["difficulty"] = "easy"
    (root / "problems.json").write_text(json.dumps(problems))
    (root / "pid_splits.json").write_text((sqa / "pid_splits.json").read_text())
    raw = kit.llava_recipe(sqa, tmp_path)
    raw["eval"] = {"sqa": {"name": "scienceqa", "root": str(root), "split": "test", "limit": 6}}
    report = check_recipe(validate_recipe(raw), decode_images=False)

    with_images = [pid for pid in pids if problems[pid].get("image")]
    assert with_images  # the images are left behind in sqa/, so each one is missing
    evals = [(p.kind, p.sample_id, p.source) for p in report.problems if p.where == "eval.sqa"]
    assert evals == [("unknown_field", pids[0], str(root / "problems.json"))] + [
        ("missing_image", pid, str(root)) for pid in with_images
    ]
    assert report.samples["eval.sqa"] == 6


def test_bad_jsonl_lines_are_malformed_records_and_the_rest_is_checked(
    tmp_path: Path, sqa: Path, kit: SimpleNamespace
) -> None:
    raw = kit.llava_recipe(sqa, tmp_path)
    lines = [json.dumps(record) for record in kit.good_records(4)]
    lines[1] = '{"id": "s1",'
    (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n")
    raw["stages"]["pretrain"]["data"]["path"] = str(tmp_path / "data.jsonl")
    report = check_recipe(validate_recipe(raw), decode_images=False)
    assert [(p.kind, p.sample_id, p.message[:26]) for p in report.problems] == [
        ("bad_record", None, "line 2: invalid JSON at co"),
    ]
    assert report.samples["stages.pretrain"] == 3


def _split_problems(root: Path, limit: int) -> list[tuple[str, dict]]:
    problems = json.loads((root / "problems.json").read_text())
    pids = json.loads((root / "pid_splits.json").read_text())["train"][:limit]
    return [(str(pid), problems[str(pid)]) for pid in pids]
