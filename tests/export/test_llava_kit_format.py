"""Runs HF's LLaVA format cannot hold: the CLI says why and offers `--format llava-kit`,
whose folder `llava_kit.load` turns back into the same model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import llava_kit
from llava_kit.data.collate import Collator
from llava_kit.errors import LlavaKitError, ModelError
from llava_kit.loading import open_model


def invoke(args: list[str]):
    from llava_kit.cli import app as cli

    if not any(command.name == "export" for command in cli.app.registered_commands):
        cli._register_commands()
    return CliRunner().invoke(cli.app, args)


def run_with(connector: str, tmp_path_factory, export_data, make_run) -> Path:
    def edit(raw: dict) -> None:
        raw["model"]["connector"] = connector

    return make_run(tmp_path_factory.mktemp(connector), export_data, edit)


@pytest.fixture(scope="module")
def deep_run(tmp_path_factory, export_data, make_run) -> Path:
    return run_with("mlp3x_gelu", tmp_path_factory, export_data, make_run)


@pytest.fixture(scope="module", params=["mlp3x_gelu", "gated_xattn"])
def any_run(request, tmp_path_factory, export_data, make_run) -> Path:
    """A projector HF cannot hold, and a fusion connector (its blocks live inside the LLM)."""
    if request.param == "mlp3x_gelu":
        return request.getfixturevalue("deep_run")
    return run_with(request.param, tmp_path_factory, export_data, make_run)


def test_hf_llava_refuses_a_three_layer_projector_and_offers_llava_kit(deep_run, tmp_path) -> None:
    out = tmp_path / "hf"
    result = invoke(["export", str(deep_run), "--format", "hf-llava", "--out", str(out)])
    error = result.exception
    assert isinstance(error, ModelError)
    assert "connector 'mlp3x_gelu': HF's projector has two Linear layers" in error.message
    assert "--format llava-kit" in error.hint
    assert not out.exists()


def test_llava_kit_round_trip_gives_the_same_logits(any_run, export_data, tmp_path) -> None:
    out = tmp_path / "export"
    result = invoke(["export", str(any_run), "--format", "llava-kit", "--out", str(out)])
    assert result.exit_code == 0, result.output
    loaded = llava_kit.load(out)
    trained = open_model(any_run).model
    assert type(loaded.connector) is type(trained.connector)
    image = sorted(export_data.glob("train/*/image.png"))[0]
    pixels = trained.encoder.preprocess(Image.open(image))
    batch = Collator(trained.num_visual_tokens, trained.tokenizer.pad_token_id, 512)(
        [{"input_ids": [1, 5, -200, 9, 10, 11], "pixel_values": pixels[None]}]
    )
    with torch.no_grad():
        expected = trained(**batch).logits
        got = loaded(**batch).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert loaded.tokenizer.get_vocab() == trained.tokenizer.get_vocab()
    # The export's own tokenizer, not the training machine's folder.
    assert Path(loaded.tokenizer.name_or_path) == out / "tokenizer"


def test_export_never_writes_into_a_non_empty_folder(deep_run, tmp_path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = invoke(["export", str(deep_run), "--format", "llava-kit", "--out", str(tmp_path)])
    assert isinstance(result.exception, LlavaKitError)
    assert "not an empty folder" in result.exception.message


def test_load_names_what_is_missing(tmp_path) -> None:
    with pytest.raises(LlavaKitError) as raised:
        llava_kit.load(tmp_path)
    message = raised.value.message
    assert "neither a run directory (no recipe.resolved.yaml)" in message
    assert "nor a llava-kit export (no llava_kit_export.json)" in message


def test_export_of_a_folder_that_is_no_run(tmp_path) -> None:
    result = invoke(["export", str(tmp_path), "--format", "llava-kit", "--out", str(tmp_path / "o")])
    assert isinstance(result.exception, LlavaKitError)
    assert "neither a run directory (no recipe.resolved.yaml)" in result.exception.message


def test_import_llava_kit_stays_light() -> None:
    code = "import sys, llava_kit; print('torch' in sys.modules, callable(llava_kit.load))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_a_run_missing_its_last_stage_is_not_exported(deep_run, tmp_path) -> None:
    import shutil

    from llava_kit.train.run_dir import RunDir

    partial = tmp_path / "partial"
    shutil.copytree(deep_run, partial)
    stages = list(RunDir(partial).stage(name) for name in ("pretrain", "finetune"))
    assert all(stage.is_finished() for stage in stages)
    shutil.rmtree(stages[1].final)  # as if the run had stopped during its last stage
    out = tmp_path / "export"
    result = invoke(["export", str(partial), "--format", "llava-kit", "--out", str(out)])
    assert isinstance(result.exception, LlavaKitError)
    assert "stage 'finetune' has not finished" in result.exception.message
    assert "--resume" in result.exception.hint
    assert not out.exists()


def test_load_opens_a_run_directory_and_its_export_alike(deep_run, tmp_path) -> None:
    """One way in: the run directory and its export give the same weights, recipe and
    answer template (the export from its own files only)."""
    from llava_kit.train.trained_model import load_trained_model

    out = tmp_path / "export"
    assert invoke(["export", str(deep_run), "--format", "llava-kit", "--out", str(out)]).exit_code == 0
    from_run, from_export = open_model(deep_run, device="cpu"), open_model(out, device="cpu")
    assert from_run.recipe_file == deep_run / "recipe.resolved.yaml"
    assert from_export.recipe_file == out / "recipe.yaml"
    assert type(from_run.template) is type(from_export.template)
    expected = load_trained_model(from_run.recipe, deep_run).state_dict()
    for opened in (from_run.model.state_dict(), from_export.model.state_dict(),
                   llava_kit.load(deep_run).state_dict()):
        assert opened.keys() == expected.keys()
        for name, tensor in expected.items():
            assert torch.equal(opened[name], tensor), name
