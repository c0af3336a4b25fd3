"""Helpers for the reliability tests: the real CLI in a child process, tiny recipes, small
LLaVA-JSON data sets that each test can break in its own way."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from PIL import Image

from llava_kit.demo.synth_scienceqa import synth_scienceqa
from llava_kit.digests import file_sha256

_TRAIN_CONFTEST = Path(__file__).parents[1] / "train" / "conftest.py"
_spec = importlib.util.spec_from_file_location("_train_conftest", _TRAIN_CONFTEST)
assert _spec is not None and _spec.loader is not None
_train_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_train_conftest)
tiny_recipe = _train_conftest.tiny_recipe

# The child runs the real entry point; `patch` (Python source) runs first, for tests that
# need a slow checkpoint write or a NaN at a known step without test code in the package.
_CHILD = "{patch}\nfrom llava_kit.cli.app import main\nmain()\n"


@pytest.fixture(scope="session")
def sqa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reliability") / "scienceqa"
    synth_scienceqa(out, n=64, seed=0)
    return out


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    env["COLUMNS"] = "200"  # rich wraps long messages at the terminal width
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def cli_command(args: list[str], patch: str = "") -> list[str]:
    return [sys.executable, "-c", _CHILD.format(patch=patch), *args]


def run_cli(args: list[str], cwd: Path, patch: str = "", timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command(args, patch), cwd=cwd, env=child_env(), capture_output=True, text=True,
        timeout=timeout,
    )


def write_images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.new("RGB", (20, 16), (40 * index % 256, 80, 120)).save(folder / f"{index}.png")


def good_records(count: int) -> list[dict[str, Any]]:
    colours = ["red", "green", "blue", "white"]
    return [
        {
            "id": f"s{index}",
            "image": f"{index}.png",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat colour is the square?"},
                {"from": "gpt", "value": f"It is {colours[index % 4]}."},
            ],
        }
        for index in range(count)
    ]


def llava_recipe(sqa: Path, case: Path, records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The tiny recipe with one enabled stage reading ``case/data.json`` (images in
    ``case/images``), writing into ``case/run``."""
    recipe = copy.deepcopy(tiny_recipe(sqa))
    recipe["stages"]["pretrain"]["data"] = {
        "format": "llava_json", "path": str(case / "data.json"), "image_root": str(case / "images"),
    }
    del recipe["stages"]["pretrain"]["template"]
    recipe["stages"]["finetune"]["enabled"] = False
    recipe["runtime"]["output_dir"] = str(case / "run")
    write_images(case / "images", 8)
    (case / "data.json").write_text(json.dumps(records if records is not None else good_records(8)))
    return recipe


def save_recipe(path: Path, recipe: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the SHA-256 of its bytes, and every folder."""
    return {
        str(path.relative_to(folder)): file_sha256(path) if path.is_file() else "folder"
        for path in sorted(folder.rglob("*"))
    }


# Runs many CLI invocations in one child process (importing torch and transformers once
# costs more than most cases): each case gets its own argv, working directory, exit code
# and captured stdout/stderr, exactly as `llava-kit ARGS` would produce them.
_DRIVER = """
import contextlib, io, json, os, sys, time, traceback
from llava_kit.cli.app import main
spec, target = sys.argv[1:3]
cases = json.load(open(spec))
results = {}
for name, argv, cwd in cases:
    out, err = io.StringIO(), io.StringIO()
    os.chdir(cwd)
    sys.argv = ["llava-kit", *argv]
    code, started = 0, time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()  # what the interpreter would print for an uncaught error
            code = 1
    results[name] = {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue(),
                     "seconds": time.perf_counter() - started}
with open(target, "w") as handle:
    json.dump(results, handle)
"""


def run_cli_cases(
    cases: list[tuple[str, list[str], Path]], work: Path, workers: int = 2
) -> dict[str, dict[str, Any]]:
    """name -> {code, stdout, stderr, seconds} for each (name, argv, cwd) run through the
    CLI's main(), the cases dealt round-robin to ``workers`` child processes side by side."""
    shares = [cases[index::workers] for index in range(workers)]
    running = []
    for index, share in enumerate(share for share in shares if share):
        spec, results = work / f"cases-{index}.json", work / f"results-{index}.json"
        log = work / f"driver-{index}.log"
        spec.write_text(json.dumps([(name, argv, str(cwd)) for name, argv, cwd in share]))
        with open(log, "w") as handle:  # a file, not a pipe: a full pipe would stall the child
            child = subprocess.Popen(
                [sys.executable, "-c", _DRIVER, str(spec), str(results)], env=child_env(),
                stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
            )
        running.append((child, results, log))
    merged: dict[str, dict[str, Any]] = {}
    for child, results, log in running:
        child.wait(timeout=900)
        assert child.returncode == 0, log.read_text()[-4000:]
        merged.update(json.loads(results.read_text()))
    return merged


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """These helpers for the test modules (conftest is not importable by name here)."""
    return SimpleNamespace(
        llava_recipe=llava_recipe, save_recipe=save_recipe, snapshot=snapshot,
        run_cli=run_cli, run_cli_cases=run_cli_cases, cli_command=cli_command,
        child_env=child_env, good_records=good_records, tiny_recipe=tiny_recipe,
    )
