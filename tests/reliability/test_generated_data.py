"""Generated demo data replaces only what the generator wrote: a real dataset is never touched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from llava_kit.demo.prepare import ensure_demo_data
from llava_kit.demo.synth_scienceqa import GENERATED_MARKER, synth_scienceqa
from llava_kit.recipes import load_recipe

from .conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
DEMO_RECIPE = ROOT / "recipes" / "demo" / "scienceqa_tiny.yaml"


def digests(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the SHA-256 of its bytes."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def real_dataset(folder: Path) -> Path:
    """A user's ScienceQA-shaped folder: split folders with images, notes of their own."""
    for split in ("train", "val", "test"):
        (folder / split / "1").mkdir(parents=True)
        (folder / split / "1" / "image.png").write_bytes(b"not regenerated " + split.encode())
    (folder / "notes.txt").write_text("my annotations\n")
    return folder


def test_run_refuses_a_demo_data_folder_holding_a_real_dataset(tmp_path: Path) -> None:
    data = real_dataset(tmp_path / "my_scienceqa")
    before = digests(data)
    done = run_cli(["run", str(DEMO_RECIPE), "--set", f"runtime.demo_data.out={data}",
                    "--output-dir", str(tmp_path / "run")], cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    message = " ".join(done.stderr.split())
    assert "runtime.demo_data.out" in message and str(data) in message
    assert GENERATED_MARKER in message
    assert digests(data) == before
    assert not (tmp_path / "run").exists()


def test_synth_command_with_overwrite_refuses_a_folder_it_did_not_generate(tmp_path: Path) -> None:
    data = real_dataset(tmp_path / "my_scienceqa")
    before = digests(data)
    done = run_cli(["data", "synth-scienceqa", "--out", str(data), "--n", "10", "--overwrite"],
                   cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "holds no synthetic dataset" in " ".join(done.stderr.split())
    assert digests(data) == before


def test_a_half_written_synthetic_folder_is_regenerated_and_other_files_kept(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    synth_scienceqa(out, n=20, seed=0)
    (out / "problems.json").unlink()  # as if generation had stopped before its last files
    (out / "readme-of-mine.txt").write_text("kept\n")
    recipe = yaml.safe_load(DEMO_RECIPE.read_text())
    recipe["runtime"]["demo_data"] = {"out": str(out), "n": 20, "seed": 0}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert ensure_demo_data(load_recipe(path, [])) == out
    assert len(json.loads((out / "problems.json").read_text())) == 20
    assert (out / "readme-of-mine.txt").read_text() == "kept\n"
    assert (out / GENERATED_MARKER).is_file()
