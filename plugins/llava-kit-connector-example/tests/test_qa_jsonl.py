"""The ``qa_jsonl`` data format: read, checked by `llava-kit data check`, trained on."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import yaml
from llava_kit.components import Options
from llava_kit.data.formats.base import DataFormat
from llava_kit.data.sample import Sample
from llava_kit.datacheck import check_recipe
from llava_kit.errors import DataError
from llava_kit.evaluators.base import EvalContext, EvalResult, Evaluator
from llava_kit.plugins import hookimpl
from llava_kit.plugins.hookspecs import Register
from llava_kit.plugins.registry import build_registry
from llava_kit.recipes import validate_recipe
from llava_kit.templates.base import Message
from llava_kit.tiny.recipe import tiny_recipe
from llava_kit.train.run_dir import RunDir
from PIL import Image

from llava_kit_connector_example.qa_jsonl import QAJsonlFormat, QAJsonlOptions

COLOURS = ["red", "green", "blue", "white"]


def _good(index: int) -> dict[str, Any]:
    return {"id": f"q{index}", "question": "What colour is the square?",
            "answer": f"It is {COLOURS[index % 4]}.", "image": f"{index}.png"}


def _write(folder: Path, records: list[Any]) -> Path:
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    for index in range(len(records)):
        Image.new("RGB", (20, 16), (60 * index % 256, 80, 120)).save(images / f"{index}.png")
    path = folder / "qa.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def _recipe(data: Path, path: Path, **runtime: Any) -> dict[str, Any]:
    """llava-kit's tiny recipe with one stage that reads ``path`` with this format."""
    raw = tiny_recipe(data, ["name=qa_tiny", "stages.finetune.enabled=false",
                             "stages.pretrain.batch.global_size=4",
                             "stages.pretrain.batch.micro_size=2"], **runtime)
    raw["stages"]["pretrain"]["data"] = {
        "format": "qa_jsonl", "path": str(path), "image_root": str(path.parent / "images"),
    }
    return raw


def test_registered_under_the_package_name() -> None:
    entry = build_registry().get("data_format", "qa_jsonl")
    assert entry.component is QAJsonlFormat
    assert entry.package == "llava-kit-connector-example"


def test_records_become_one_question_and_one_answer(tmp_path: Path) -> None:
    path = _write(tmp_path, [_good(0), {"id": 7, "question": "Hello?", "answer": "Hi."}])
    options = QAJsonlOptions(path=str(path), image_root=str(tmp_path / "images"))
    assert QAJsonlFormat(options).load() == [
        Sample("q0", [Message("user", "<image>\nWhat colour is the square?"),
                      Message("assistant", "It is red.")],
               images=[(tmp_path / "images" / "0.png").resolve()]),
        Sample("7", [Message("user", "Hello?"), Message("assistant", "Hi.")]),
    ]


def test_without_a_collector_every_problem_stops_the_read_at_once(tmp_path: Path) -> None:
    path = _write(tmp_path, [{"id": "a", "question": "q?"}, {"id": "b", "answer": "x"}])
    with pytest.raises(DataError) as caught:
        QAJsonlFormat(QAJsonlOptions(path=str(path))).load()
    assert caught.value.message == (
        f"{path}: 2 problems in the data file:\n"
        "  sample 'a' (line 1): has no 'answer', so nothing would be trained\n"
        "  sample 'b' (line 2): 'question' must be a non-empty string"
    )


def test_data_check_reports_its_problems_kinds_and_unknown_fields_by_sample(
    tmp_path: Path, synth_data: Path
) -> None:
    records = [_good(index) for index in range(8)]
    records[1]["image"] = "missing.png"
    records[2]["image"] = "../../outside.png"
    del records[3]["answer"]
    records[4]["question"] = "<image>\nWhat colour?"
    records[5]["answer"] = " "
    records[6]["source"] = "web"
    records[7].pop("id")
    path = _write(tmp_path, records)
    report = check_recipe(validate_recipe(_recipe(synth_data, path)), decode_images=False)

    found = sorted((p.kind, p.sample_id, p.source) for p in report.problems)
    assert found == sorted([
        ("missing_image", "q1", str(path)), ("outside_image_root", "q2", str(path)),
        ("no_answer", "q3", str(path)), ("image_markers", "q4", str(path)),
        ("empty_answer", "q5", str(path)), ("unknown_field", "q6", str(path)),
        ("bad_record", None, str(path)),
    ])
    messages = {p.kind: p.message for p in report.problems}
    assert messages["unknown_field"] == "line 7: unknown field(s) 'source'"
    assert messages["bad_record"].startswith("line 8: missing 'id'")
    assert messages["missing_image"].startswith("image 'missing.png' not found under")
    assert {p.sample_id for p in report.errors
            if p.where == "stages.pretrain" and p.sample_id is not None} == {
        "q1", "q2", "q3", "q4", "q5"}
    assert report.samples["stages.pretrain"] == 7  # the record without an id is not a sample
    rendered = report.render()
    assert rendered.startswith("data check: 6 error(s), 1 warning(s); 5 bad sample(s) of 7")
    assert "  stages.pretrain: sample 'q4': the question contains <image>" in rendered


class QAEvalOptions(Options):
    path: str
    image_root: str


class QAExactMatch(Evaluator):
    """Exact-match answers on qa_jsonl questions (another package's evaluator)."""

    Options: ClassVar[type[Options]] = QAEvalOptions

    def data_formats(self) -> list[DataFormat]:
        options: QAEvalOptions = self.options  # type: ignore[assignment]
        return [QAJsonlFormat(QAJsonlOptions(path=options.path, image_root=options.image_root))]

    def evaluate(self, context: EvalContext) -> EvalResult:
        raise AssertionError("the data check reads the data, it never evaluates")


@hookimpl
def register_evaluators(register: Register) -> None:
    register("qa_exact_match", QAExactMatch)


def test_data_check_covers_the_data_an_evaluator_declares(tmp_path: Path, synth_data: Path) -> None:
    train = _write(tmp_path / "train", [_good(index) for index in range(4)])
    held_out = [_good(index) for index in range(3)]
    held_out[1]["image"] = "gone.png"
    held_out[2]["lang"] = "en"
    test = _write(tmp_path / "test", held_out)
    raw = _recipe(synth_data, train)
    raw["eval"] = {"qa": {"name": "qa_exact_match", "path": str(test),
                          "image_root": str(test.parent / "images")}}
    plugin = SimpleNamespace(register_evaluators=register_evaluators, __name__="qa_eval_plugin")
    registry = build_registry(extra_plugins=[(plugin, "qa-eval")])
    report = check_recipe(validate_recipe(raw, registry=registry), decode_images=False)

    assert [(p.kind, p.where, p.sample_id) for p in report.problems] == [
        ("unknown_field", "eval.qa", "q2"), ("missing_image", "eval.qa", "q1"),
    ]
    assert report.samples == {"stages.pretrain": 4, "eval.qa": 3}


def test_a_recipe_trains_on_it_and_skips_its_bad_samples(
    tmp_path: Path, synth_data: Path
) -> None:
    records = [_good(index) for index in range(5)]
    records[2]["answer"] = ""
    path = _write(tmp_path, records)
    recipe = tmp_path / "recipe.yaml"
    raw = _recipe(synth_data, path, on_bad_sample="skip", output_dir=str(tmp_path / "run"))
    recipe.write_text(yaml.safe_dump(raw, sort_keys=False))
    done = subprocess.run(
        [sys.executable, "-m", "llava_kit.cli", "run", str(recipe), "--no-eval"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "skipping 1 bad sample(s) of 5 in stages.pretrain" in done.stderr

    run = RunDir(tmp_path / "run")
    skipped = [json.loads(line) for line in run.skipped_samples.read_text().splitlines()]
    assert [(row["sample_id"], row["kind"]) for row in skipped] == [("q2", "empty_answer")]
    assert json.loads(run.stage("pretrain").summary.read_text())["samples"] == 4
    metrics = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    losses = [row["loss"] for row in metrics if "loss" in row]
    assert losses and all(math.isfinite(loss) for loss in losses)
