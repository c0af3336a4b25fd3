"""``llava-kit validate`` through the real command line, with the built-in components."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from llava_kit.cli.validate_cmd import summary_lines
from llava_kit.recipes import validate_recipe

SCREEN_LINES = 40

REAL_RECIPE: dict[str, Any] = {
    "name": "tiny",
    "model": {
        "encoder": {"name": "hf_clip", "path": "models/clip"},
        "connector": "mlp2x_gelu",
        "llm": {"name": "hf_causal_lm", "path": "models/lm"},
        "template": "v1",
    },
    "stages": {
        "pretrain": {
            "data": {"format": "captions", "path": "data/captions.json", "image_root": "data/images"},
            "template": "plain",
            "trainable": ["connector"],
            "batch": {"global_size": 8, "micro_size": 2},
            "optimizer": {"lr": 1.0e-3},
        },
        "finetune": {
            "data": {"format": "llava_json", "path": "data/chat.json", "image_root": "data/images"},
            "trainable": ["connector", "llm"],
            "batch": {"global_size": 4, "micro_size": 2},
            "optimizer": {"lr": 2.0e-5},
        },
    },
}


def run_validate(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "80", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "llava_kit.cli", "validate", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )


def changed(changes: dict[str, Any]) -> str:
    """REAL_RECIPE as YAML, with each dotted path set to its value."""
    recipe = copy.deepcopy(REAL_RECIPE)
    for dotted_path, value in changes.items():
        *parents, last = dotted_path.split(".")
        node = recipe
        for key in parents:
            node = node[key]
        node[last] = value
    return yaml.safe_dump(recipe, sort_keys=False)


@dataclass
class BadCase:
    id: str
    files: dict[str, str]
    expected: list[str]
    args: list[str] = field(default_factory=list)
    recipe: str = "r.yaml"


BAD_CASES = [
    BadCase(
        "unknown-connector",
        {"r.yaml": changed({"model.connector": "mlp2x_gelo"})},
        ["r.yaml: model.connector: unknown connector 'mlp2x_gelo'; installed:",
         "did you mean 'mlp2x_gelu'?"],
    ),
    BadCase(
        "top-level-typo",
        {"r.yaml": changed({"descripton": "a typo"})},
        ["r.yaml: descripton: unknown key; did you mean 'description'?"],
    ),
    BadCase(
        "nested-typo",
        {"r.yaml": changed({"stages.pretrain.optimizer.warmup_ration": 0.1})},
        ["r.yaml: stages.pretrain.optimizer.warmup_ration: unknown key; did you mean 'warmup_ratio'?"],
    ),
    BadCase(
        "wrong-type",
        {"r.yaml": changed({"stages.pretrain.optimizer.lr": "fast"})},
        ["r.yaml: stages.pretrain.optimizer.lr: must be a valid number, got 'fast'"],
    ),
    BadCase(
        "bad-component-option",
        {"r.yaml": changed({"model.encoder.select_feature": "all"})},
        ["r.yaml: model.encoder.select_feature: must be one of 'patch' or 'cls_patch', got 'all'"],
    ),
    BadCase(
        "batch-not-divisible",
        {"r.yaml": changed({"stages.pretrain.batch": {"global_size": 10, "micro_size": 4}})},
        ["r.yaml: stages.pretrain.batch.global_size: 10 is not divisible by micro_size 4"],
    ),
    BadCase(
        "no-enabled-stage",
        {"r.yaml": changed({"stages.pretrain.enabled": False})},
        ["r.yaml: stages: no enabled stage"],
        args=["--set", "stages.finetune.enabled=false"],
    ),
    BadCase(
        "missing-extends-target",
        {"r.yaml": "extends: base.yaml\nname: r\n"},
        ["r.yaml: extends: 'base.yaml' not found"],
    ),
    BadCase(
        "extends-cycle",
        {"r.yaml": "extends: configs/a.yaml\n", "configs/a.yaml": "extends: ../r.yaml\n"},
        ["configs/a.yaml: extends: cycle r.yaml -> configs/a.yaml -> r.yaml"],
    ),
    BadCase(
        "yaml-syntax",
        {"r.yaml": "name: tiny\nmodel:\n  encoder: {name: hf_clip\n  connector: linear\n"},
        ["r.yaml: line 4, column 12: invalid YAML: expected ',' or '}', but got ':'"],
    ),
    BadCase(
        "set-without-equals",
        {"r.yaml": changed({})},
        ["r.yaml: --set stages.pretrain.epochs: expected KEY=VALUE"],
        args=["--set", "stages.pretrain.epochs"],
    ),
    BadCase(
        "absurd-pattern-width",
        {"r.yaml": changed({"model.connector": "mlp100000000x_gelu"})},
        ["r.yaml: model.connector.depth: must be less than or equal to 256, got 100000000"],
    ),
    BadCase(
        "absurd-option-size",
        {"r.yaml": changed({"model.connector": {"name": "qformer", "num_queries": 10**9}})},
        ["r.yaml: model.connector.num_queries: must be less than or equal to 16384, got 1000000000"],
    ),
    BadCase("missing-file", {"other.yaml": changed({})}, ["nope.yaml: file not found"], recipe="nope.yaml"),
]


def _words(text: str) -> str:
    # Rich wraps long lines at spaces; compare text with any run of whitespace as one space.
    return " ".join(text.split())


@pytest.mark.parametrize("case", BAD_CASES, ids=lambda case: case.id)
def test_bad_recipe_is_one_short_error_without_traceback(tmp_path: Path, case: BadCase) -> None:
    for name, text in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    result = run_validate(tmp_path, case.recipe, *case.args)

    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert len(output.splitlines()) < SCREEN_LINES, output
    stderr = _words(result.stderr)
    assert stderr.startswith("error:"), output
    for expected in case.expected:
        assert _words(expected) in stderr, output


def test_valid_recipe_prints_summary_and_ok(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(changed({}))

    result = run_validate(
        tmp_path, "r.yaml", "--set", "model.connector=mlp3x_gelu", "--set", "stages.finetune.epochs=3"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.splitlines() == [
        "recipe tiny",
        "  encoder    hf_clip",
        "  connector  mlp3x_gelu",
        "  llm        hf_causal_lm",
        "  template   v1",
        "stages",
        "  pretrain   trains connector; data captions, template plain, 1 epoch(s), batch 8, lr 0.001",
        "  finetune   trains connector, llm; data llava_json, template v1, 3 epoch(s), batch 4, lr 2e-05",
        "ok",
    ]


def test_summary_shows_disabled_stages_lora_and_evals(registry, toy_recipe: dict[str, Any]) -> None:
    toy_recipe["stages"]["finetune"] = copy.deepcopy(toy_recipe["stages"]["pretrain"])
    toy_recipe["stages"]["finetune"].update(
        trainable=["connector", "llm"], lora={"r": 16}, epochs=1.5, template="toy_plain"
    )
    toy_recipe["stages"]["pretrain"]["enabled"] = False
    toy_recipe["eval"] = {"val": {"name": "toy_eval", "split": "val"}}

    lines = summary_lines(validate_recipe(toy_recipe, registry=registry))

    assert lines[5:] == [
        "stages",
        "  pretrain   disabled",
        "  finetune   trains connector, llm (LoRA r=16); data toy_captions, template toy_plain, "
        "1.5 epoch(s), batch 8, lr 0.001",
        "eval",
        "  val        toy_eval",
    ]
