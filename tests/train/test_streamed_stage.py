"""A recipe stage trained from shards (`data convert`, then `format: shards`): it trains through
`llava-kit run` with loader workers, a run killed mid-stage resumes to the uninterrupted
weights, the data check reads every record while the start of a run reads only the index,
and settings a stream cannot honour stop the run before it starts."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import shutil
import tarfile
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from safetensors.torch import load_file

from llava_kit.tiny.recipe import tiny_recipe

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
STEPS = ["--set", "stages.pretrain.max_steps=6", "--set", "stages.pretrain.save_every_steps=2"]


def llava_kit(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llava_kit.cli", *args], env=ENV,
                          capture_output=True, text=True, check=check)


def _convert(source: Path, image_root: Path, out: Path, fmt: str = "captions") -> Path:
    llava_kit("data", "convert", "--format", fmt, "--path", str(source), "--image-root",
              str(image_root), "--out", str(out), "--shard-size", "8", check=True)
    return out


@pytest.fixture(scope="module")
def shards(synth_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _convert(synth_data / "captions.json", synth_data,
                    tmp_path_factory.mktemp("stream") / "shards")


def _recipe(tmp_path: Path, synth_data: Path, data: dict[str, Any], **runtime: Any) -> Path:
    raw = tiny_recipe(synth_data, ["stages.finetune.enabled=false"], **runtime)
    raw["stages"]["pretrain"]["data"] = data
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _replace_member(shard: Path, name: str, text: str) -> None:
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(shard, "w") as tar:
        for member, data in members:
            if member.name == name:
                data = text.encode()
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data))


def _final(run_dir: Path) -> dict:
    return load_file(run_dir / "checkpoints" / "pretrain" / "final" / "model.safetensors")


@pytest.mark.slow
def test_a_killed_streamed_stage_resumes_to_the_uninterrupted_weights(
    tmp_path: Path, synth_data: Path, shards: Path, kill_after_first_checkpoint: Callable[..., None],
) -> None:
    recipe = str(_recipe(tmp_path, synth_data, {"format": "shards", "path": str(shards),
                                                "shuffle_buffer": 16}, num_workers=2))
    straight = tmp_path / "straight"
    done = llava_kit("run", recipe, "--output-dir", str(straight), *STEPS)
    assert done.returncode == 0, done.stderr
    steps = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in steps if r.get("stage") == "pretrain" and "loss" in r]
    assert len(losses) == 6 and losses[-1] < losses[0]

    killed = tmp_path / "killed"
    kill_after_first_checkpoint(
        [sys.executable, "-m", "llava_kit.cli", "run", recipe, "--output-dir", str(killed), *STEPS],
        ENV, killed / "checkpoints" / "pretrain", timeout=180)
    resumed = llava_kit("run", recipe, "--output-dir", str(killed), "--resume", *STEPS)
    assert resumed.returncode == 0, resumed.stderr
    expected, got = _final(straight), _final(killed)
    assert expected.keys() == got.keys()
    for name in expected:
        assert (expected[name] == got[name]).all(), name


def test_data_check_reads_every_record_and_the_run_start_reads_the_index(
    tmp_path: Path, synth_data: Path,
) -> None:
    images = sorted(p.relative_to(synth_data) for p in synth_data.rglob("*.png"))
    records = [{"id": f"s{i}", "image": str(images[i]), "conversations": [
        {"from": "human", "value": "<image>\nWhat is shown?"},
        {"from": "gpt", "value": f"Picture number {i}."}]} for i in range(16)]
    source = tmp_path / "data.json"
    source.write_text(json.dumps(records))
    shards = _convert(source, synth_data, tmp_path / "shards", fmt="llava_json")
    # `data convert` refuses such a record; shards written by other tools can still hold one.
    bad = {"id": "s11", "messages": [["user", "<image>\n<image>\nWhat is shown?"],
                                     ["assistant", "Picture number 11."]], "images": ["0.png"]}
    _replace_member(shards / "shard-000001.tar", "000000011.json", json.dumps(bad))
    recipe = str(_recipe(tmp_path, synth_data, {"format": "shards", "path": str(shards)}))

    checked = llava_kit("data", "check", recipe, "--fast")
    assert checked.returncode != 0
    assert "shard-000001.tar:000000011" in checked.stdout + checked.stderr
    assert "2 <image> marker(s) for 1 image(s)" in checked.stdout + checked.stderr

    run = llava_kit("run", recipe, "--output-dir", str(tmp_path / "run"),
                    "--set", "stages.pretrain.batch.global_size=4",
                    "--set", "stages.pretrain.batch.micro_size=4")
    output = run.stdout + run.stderr
    assert run.returncode != 0 and "Traceback" not in output
    assert "shard-000001.tar:000000011: sample 's11'" in output  # found as it arrived
    assert "llava-kit data check" in output


def test_settings_a_stream_cannot_honour_stop_the_run_before_it_starts(
    tmp_path: Path, synth_data: Path, shards: Path,
) -> None:
    recipe = str(_recipe(tmp_path, synth_data, {"format": "shards", "path": str(shards)},
                         feature_cache=str(tmp_path / "features")))
    run = llava_kit("run", recipe, "--output-dir", str(tmp_path / "run"),
                    "--set", "stages.pretrain.batch.group_by_length=true")
    output = run.stdout + run.stderr
    assert run.returncode != 0 and "Traceback" not in output
    assert "stages.pretrain.batch.group_by_length" in output
    assert "runtime.feature_cache" in output
    assert not (tmp_path / "run").exists()


def test_a_folder_without_an_index_is_one_screen(tmp_path: Path, synth_data: Path) -> None:
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "shard-000000.tar").write_bytes(b"")
    recipe = str(_recipe(tmp_path, synth_data, {"format": "shards", "path": str(tmp_path / "half")}))
    run = llava_kit("run", recipe, "--output-dir", str(tmp_path / "run"))
    output = " ".join((run.stdout + run.stderr).split())  # as read, not as wrapped
    assert run.returncode != 0 and "Traceback" not in output
    assert "no index.json" in output and "llava-kit data convert" in output


@pytest.mark.distributed
def test_two_ranks_stream_their_own_shards_and_resume_together(
    tmp_path: Path, synth_data: Path, shards: Path, kill_after_first_checkpoint: Callable[..., None],
) -> None:
    """Under ZeRO-2 each rank resumes its own readers: killed and resumed equals straight."""
    recipe = str(_recipe(tmp_path, synth_data, {"format": "shards", "path": str(shards)},
                         deepspeed="zero2"))
    two = ["--nproc", "2", *STEPS]
    straight = tmp_path / "straight"
    done = llava_kit("run", recipe, "--output-dir", str(straight), *two)
    assert done.returncode == 0, done.stderr[-3000:]
    killed = tmp_path / "killed"
    kill_after_first_checkpoint(
        [sys.executable, "-m", "llava_kit.cli", "run", recipe, "--output-dir", str(killed), *two],
        ENV, killed / "checkpoints" / "pretrain", timeout=300)
    resumed = llava_kit("run", recipe, "--output-dir", str(killed), "--resume", *two)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, got = _final(straight), _final(killed)
    for name in expected:
        assert (expected[name] - got[name]).abs().max() < 1e-6, name


def test_a_truncated_shard_is_named_by_the_check_and_by_the_run(
    tmp_path: Path, synth_data: Path, shards: Path,
) -> None:
    damaged = tmp_path / "shards"
    shutil.copytree(shards, damaged)
    shard = damaged / "shard-000001.tar"
    shard.write_bytes(shard.read_bytes()[:3000])  # a copy that stopped part-way
    before = shard.read_bytes()
    recipe = str(_recipe(tmp_path, synth_data, {"format": "shards", "path": str(damaged)}))
    for result in (llava_kit("data", "check", recipe, "--fast"),
                   llava_kit("run", recipe, "--output-dir", str(tmp_path / "run"), *STEPS)):
        output = "".join((result.stdout + result.stderr).split())  # wrapping splits paths
        assert result.returncode != 0 and "Traceback" not in output
        assert f"{shard}:notareadabletarshard" in output
    assert shard.read_bytes() == before
