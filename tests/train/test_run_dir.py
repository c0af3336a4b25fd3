from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from datetime import datetime
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from llava_kit.errors import LlavaKitError
from llava_kit.train import run_dir as run_dir_module
from llava_kit.train.run_dir import RunDir, prepare_run_dir, provenance, provenance_comment, write_resolved_recipe

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_default_run_dir_is_recipe_then_timestamp() -> None:
    now = datetime(2024, 1, 2, 3, 4, 5)
    assert RunDir.default("llava-v1.5", now=now) == RunDir(Path("runs/llava-v1.5/20240102-030405"))
    assert RunDir.default("tiny", Path("/scratch"), now=now).root == Path(
        "/scratch/tiny/20240102-030405"
    )


def test_prepare_creates_missing_parents(tmp_path: Path) -> None:
    target = tmp_path / "runs" / "tiny" / "20240102-030405"
    assert prepare_run_dir(target, resume=False) == target
    assert target.is_dir()


def test_prepare_accepts_an_existing_empty_dir(tmp_path: Path) -> None:
    assert prepare_run_dir(tmp_path, resume=False) == tmp_path


def test_prepare_refuses_a_non_empty_dir_without_resume(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(LlavaKitError) as error:
        prepare_run_dir(tmp_path, resume=False)
    text = str(error.value)
    assert str(tmp_path) in text
    assert "--resume" in text and "--output-dir" in text
    assert (tmp_path / "metrics.jsonl").read_text() == "{}\n"


def test_prepare_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "run"
    target.write_text("x")
    with pytest.raises(LlavaKitError, match="is a file"):
        prepare_run_dir(target, resume=False)


def test_resume_needs_an_existing_dir(tmp_path: Path) -> None:
    with pytest.raises(LlavaKitError, match="does not exist") as error:
        prepare_run_dir(tmp_path / "missing", resume=True)
    assert not (tmp_path / "missing").exists()
    assert "--output-dir" in str(error.value)


def test_resume_needs_a_resolved_recipe(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(LlavaKitError, match="recipe.resolved.yaml"):
        prepare_run_dir(tmp_path, resume=True)


def test_resume_returns_the_run_dir_untouched(tmp_path: Path) -> None:
    (tmp_path / "recipe.resolved.yaml").write_text("name: tiny\n")
    assert prepare_run_dir(tmp_path, resume=True) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.resolved.yaml"]


def test_provenance_versions(tmp_path: Path) -> None:
    info = provenance(tmp_path)
    assert list(info) == ["llava-kit", "torch", "transformers", "deepspeed", "python", "git"]
    assert info["llava-kit"] == "0.1.0"
    assert info["torch"] == metadata.version("torch")
    assert info["transformers"] == metadata.version("transformers")
    assert info["python"] == platform.python_version()
    assert info["git"] == "not a repository"


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_SYSTEM": os.devnull,
    }
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_provenance_git_revision_and_dirty_flag(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / "recipe.yaml").write_text("a: 1\n")
    _git(tmp_path, "add", "recipe.yaml")
    _git(tmp_path, "commit", "-q", "-m", "init")
    revision = _git(tmp_path, "rev-parse", "HEAD")
    assert provenance(tmp_path)["git"] == revision
    (tmp_path / "untracked.txt").write_text("not part of the revision\n")
    assert provenance(tmp_path)["git"] == revision
    (tmp_path / "recipe.yaml").write_text("a: 2\n")
    assert provenance(tmp_path)["git"] == f"{revision} (dirty)"


def test_provenance_without_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_git(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("git")

    monkeypatch.setattr(run_dir_module.subprocess, "run", no_git)
    assert provenance(tmp_path)["git"] == "git not available"


def _info(git: str) -> dict[str, str]:
    return {
        "llava-kit": "0.1.0",
        "torch": "2.5.0",
        "transformers": "4.46.0",
        "deepspeed": "0.15.0",
        "python": "3.11.9",
        "git": git,
    }


def test_provenance_comment_lines() -> None:
    assert provenance_comment(_info(f"{SHA} (dirty)")).splitlines()[1:] == [
        "# llava-kit 0.1.0",
        "# torch 2.5.0",
        "# transformers 4.46.0",
        "# deepspeed 0.15.0",
        "# python 3.11.9",
        f"# git {SHA} (dirty)",
    ]
    assert provenance_comment(_info(SHA)).splitlines()[-1] == f"# git {SHA}"
    assert (
        provenance_comment(_info("not a repository")).splitlines()[-1] == "# git: not a repository"
    )


def test_resolved_recipe_stays_loadable_and_matches_provenance_json(tmp_path: Path) -> None:
    recipe_yaml = (
        "name: tiny\nmodel:\n  connector: {name: linear}\nstages:\n  pretrain: {epochs: 1}"
    )
    info = _info("not a repository")
    path = write_resolved_recipe(tmp_path, recipe_yaml, info=info)
    assert path == tmp_path / "recipe.resolved.yaml"
    text = path.read_text()
    assert text.startswith("# Resolved recipe written by llava-kit")
    assert text.endswith(recipe_yaml + "\n")
    assert "# git: not a repository\nname: tiny\n" in text
    assert yaml.safe_load(text) == yaml.safe_load(recipe_yaml)
    assert json.loads((tmp_path / "provenance.json").read_text()) == info


def test_resolved_recipe_gathers_provenance_by_default(tmp_path: Path) -> None:
    write_resolved_recipe(tmp_path, "name: tiny\n")
    info = json.loads((tmp_path / "provenance.json").read_text())
    assert info["llava-kit"] == "0.1.0"
    assert f"# torch {info['torch']}\n" in (tmp_path / "recipe.resolved.yaml").read_text()
