"""`llava-kit export --format hf-llava` writes what vLLM and SGLang load: transformers'
Llava config and weight names, the tokenizer with its <image> token, the image processor
(also as its own file) and the chat template; a connector vLLM cannot run is named."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoProcessor, AutoTokenizer
from typer.testing import CliRunner

from llava_kit.export.engines import serving_engine_notes


def export(run_dir: Path, out: Path):
    from llava_kit.cli import app as cli

    if not any(command.name == "export" for command in cli.app.registered_commands):
        cli._register_commands()
    return CliRunner().invoke(cli.app, ["export", str(run_dir), "--format", "hf-llava", "--out", str(out)])


def test_an_mlp2x_export_has_everything_the_engines_load(serve_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "hf"
    result = export(serve_run, out)
    assert result.exit_code == 0, result.output
    assert "note:" not in result.output
    assert serving_engine_notes(out) == []
    config = json.loads((out / "config.json").read_text())
    assert (config["projector_hidden_act"], config["vision_feature_select_strategy"]) == ("gelu", "default")
    assert config["vision_feature_layer"] == -2
    assert (out / "chat_template.jinja").is_file() and (out / "preprocessor_config.json").is_file()
    processor = AutoProcessor.from_pretrained(out)
    assert processor.chat_template and processor.image_token == "<image>"
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.convert_tokens_to_ids("<image>") == config["image_token_index"]
    assert tokenizer("<image>", add_special_tokens=False)["input_ids"] == [config["image_token_index"]]


def test_a_one_layer_connector_is_named_as_not_servable_by_vllm(tmp_path: Path, serve_data: Path) -> None:
    from llava_kit.export.hf_llava import export_hf_llava
    from llava_kit.model.build import build_model
    from llava_kit.recipes import validate_recipe
    from llava_kit.tiny.recipe import tiny_recipe

    recipe = validate_recipe(tiny_recipe(serve_data, ["model.connector=linear"]))
    export_hf_llava(build_model(recipe.model).eval(), recipe, tmp_path / "hf")
    [note] = serving_engine_notes(tmp_path / "hf")
    assert "vLLM cannot serve this export" in note and "'linear'" in note
