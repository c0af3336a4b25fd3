"""`llava-kit export --format hf-llava`: transformers loads the folder with no custom code,
its processor builds the inputs training would, and its logits equal ours."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration

from llava_kit.constants import IMAGE_TOKEN_ID
from llava_kit.data.collate import Collator
from llava_kit.export import export_run
from llava_kit.loading import open_model
from llava_kit.templates.base import Message
from llava_kit.templates.image_position import place_image
from llava_kit.templates.tokenize import tokenize_prompt


def _linear_cls_pad(raw: dict) -> None:
    raw["model"]["connector"] = "linear"
    raw["model"]["encoder"].update(select_feature="cls_patch", image_aspect_ratio="pad", select_layer=-1)
    raw["model"]["image_position"] = "question_first"


def _mlp1x_lora(raw: dict) -> None:
    raw["model"]["connector"] = "mlp1x_gelu"
    raw["stages"]["finetune"]["lora"] = {"r": 4, "alpha": 8, "dropout": 0.0,
                                         "target_modules": ["q_proj", "v_proj"]}


CASES = {"mlp2x_patch_square": None, "linear_cls_patch_pad": _linear_cls_pad,
         "mlp1x_lora": _mlp1x_lora}


@pytest.fixture(scope="module", params=list(CASES))
def exported(request, tmp_path_factory, export_data, make_run):
    root = tmp_path_factory.mktemp(request.param)
    run_dir = make_run(root, export_data, CASES[request.param])
    notes = export_run(run_dir, "hf-llava", root / "hf")
    hf, info = LlavaForConditionalGeneration.from_pretrained(root / "hf", output_loading_info=True)
    opened = open_model(run_dir)  # LoRA still unmerged here: the export must merge it
    return {"notes": notes, "hf": hf.eval(), "info": info, "recipe": opened.recipe,
            "model": opened.model, "template": opened.template,
            "processor": AutoProcessor.from_pretrained(root / "hf"), "data": export_data}


def picture(data: Path, index: int) -> Image.Image:
    # Not square, so that "pad" and the centre crop both matter.
    path = sorted(data.glob("train/*/image.png"))[index]
    return Image.open(path).convert("RGB").resize((48, 30))


def conversation(position: str):
    question = "What is in the picture?"
    first = place_image([Message("user", f"<image>{question}")], position, random.Random(0))[0]
    ours = [first, Message("assistant", "A shape."), Message("user", "What colour?")]
    theirs = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]},
        {"role": "assistant", "content": "A shape."},
        {"role": "user", "content": "What colour?"},
    ]
    return ours, theirs


def hf_inputs(exported, image: Image.Image) -> dict:
    processor = exported["processor"]
    _, theirs = conversation(exported["recipe"].model.image_position)
    text = processor.apply_chat_template(theirs, add_generation_prompt=True)
    return processor(images=image, text=text, return_tensors="pt")


def test_loads_without_missing_weights_or_notes(exported) -> None:
    info = exported["info"]
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert exported["notes"] == []
    assert exported["hf"].config.image_seq_length == exported["model"].num_visual_tokens


def test_processor_builds_the_inputs_training_would(exported) -> None:
    model, recipe = exported["model"], exported["recipe"]
    image = picture(exported["data"], 0)
    inputs = hf_inputs(exported, image)
    torch.testing.assert_close(inputs["pixel_values"][0], model.encoder.preprocess(image), rtol=0, atol=0)
    ours, _ = conversation(recipe.model.image_position)
    template = exported["template"]
    ids = tokenize_prompt(template.render_prompt(ours), model.tokenizer)
    expanded, _ = Collator(model.num_visual_tokens, 0, 10_000).expand(ids, None)
    image_id = exported["hf"].config.image_token_index
    assert inputs["input_ids"][0].tolist() == [image_id if t == IMAGE_TOKEN_ID else t for t in expanded]


def test_logits_and_greedy_tokens_match_ours(exported) -> None:
    model, hf = exported["model"], exported["hf"]
    inputs = hf_inputs(exported, picture(exported["data"], 0))
    image_id = hf.config.image_token_index
    ours_ids = inputs["input_ids"].masked_fill(inputs["input_ids"] == image_id, IMAGE_TOKEN_ID)
    with torch.no_grad():
        ours = model(input_ids=ours_ids, attention_mask=inputs["attention_mask"],
                     pixel_values=inputs["pixel_values"]).logits
        theirs = hf(**inputs).logits
        other = hf(**hf_inputs(exported, picture(exported["data"], 5))).logits
    vocab = ours.shape[-1]
    torch.testing.assert_close(theirs[..., :vocab], ours, rtol=1e-5, atol=1e-5)
    # Guard: the image really reaches the logits (a wrong splice would show here).
    assert (other - theirs).abs().max() > 1e-3
    # The added <image> row never wins: its logit is the mean of the others.
    assert (theirs[..., vocab:].max(-1).values < theirs[..., :vocab].max(-1).values).all()

    new_ours = model.generate(ours_ids, inputs["attention_mask"], inputs["pixel_values"], max_new_tokens=8)
    new_theirs = hf.generate(**inputs, max_new_tokens=8, do_sample=False)[:, ours_ids.shape[1]:]
    assert new_ours.tolist() == new_theirs.tolist()


def test_stage1_only_run_exports_without_a_chat_template(tmp_path, export_data, make_run) -> None:
    from typer.testing import CliRunner

    from llava_kit.cli import app as cli

    def pretrain_only(raw: dict) -> None:
        raw["stages"]["finetune"]["enabled"] = False

    run_dir = make_run(tmp_path, export_data, pretrain_only)
    if not any(command.name == "export" for command in cli.app.registered_commands):
        cli._register_commands()
    result = CliRunner().invoke(cli.app, ["export", str(run_dir), "--out", str(tmp_path / "hf")])
    assert result.exit_code == 0, result.output
    # The run answers in 'plain' (its last stage's template), which has no chat form.
    assert "no chat_template written" in result.output and "'plain'" in result.output
    assert AutoProcessor.from_pretrained(tmp_path / "hf").chat_template is None
