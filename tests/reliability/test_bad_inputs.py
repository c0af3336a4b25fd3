"""Bad inputs through the real CLI, one table: recipes, data sets, images, model folders,
checkpoints, run directories, grid files, predictions files and chat endpoints. Each case
is any `llava-kit` command line; each must stop with a non-zero exit, a message naming the
file, field or sample, no traceback, and every file that was there before byte-identical."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import struct
import zlib
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator

import pytest
import torch
import yaml

from llava_kit.endpoints.local_server import LocalChatServer

Recipe = dict[str, Any]
# A change to the case's tiny recipe (and its folder); returns extra command-line arguments.
Edit = Callable[[Recipe, Path, Path], "list[str] | None"]


@dataclass(frozen=True)
class Inputs:
    """What the module builds once, for cases to copy into their own folder and damage."""

    sqa: Path  # synthetic ScienceQA
    trained: Path  # a finished run of the tiny two-stage recipe
    export: Path  # that run exported in the llava-kit format
    llm: Path  # a saved tiny Llama with its tokenizer
    clip: Path  # a saved tiny CLIP vision tower with its image processor
    urls: dict[str, str]  # endpoint behaviour -> base URL


@dataclass(frozen=True)
class Folder:
    """One case's folder, holding the tiny recipe's data set (see ``kit.llava_recipe``)."""

    path: Path
    recipe: Recipe
    inputs: Inputs

    def copy(self, source: Path, name: str) -> Path:
        return Path(shutil.copytree(source, self.path / name))

    def recipe_file(self) -> Path:
        """``raw.yaml`` when the case wrote one, else the (edited) recipe as recipe.yaml."""
        raw = self.path / "raw.yaml"
        if raw.exists():
            return raw
        path = self.path / "recipe.yaml"
        path.write_text(yaml.safe_dump(self.recipe, sort_keys=False))
        return path


Argv = Callable[[Folder], list[str]]  # builds what the case needs; returns the argv


@dataclass(frozen=True)
class Case:
    name: str
    argv: Argv
    expected: tuple[str, ...]  # all must appear in the output
    marks: tuple[Any, ...] = ()  # pytest marks: skips, and fixes owed by other files
    leaves: tuple[str, ...] = ()  # new files it may leave, which must be empty
    rewrites: tuple[str, ...] = ()  # llava-kit's own bookkeeping it may rewrite


def _recipe_command(*command: str) -> Callable[[Edit], Argv]:
    def with_edit(edit: Edit) -> Argv:
        def argv(folder: Folder) -> list[str]:
            extra = edit(folder.recipe, folder.path, folder.inputs.sqa) or []
            return [*command, str(folder.recipe_file()), *extra]
        return argv
    return with_edit


run = _recipe_command("run")
check = _recipe_command("data", "check")
validate = _recipe_command("validate")
plan = _recipe_command("plan")


def _records(case: Path) -> list[dict[str, Any]]:
    return json.loads((case / "data.json").read_text())


def _int8_connector(recipe: Recipe, case: Path, sqa: Path) -> None:
    """A quantized connector file given to init_connector_from: never cast and trained."""
    import torch
    from safetensors.torch import save_file

    save_file({"proj.0.weight": torch.ones(4, 4, dtype=torch.int8)}, str(case / "int8.safetensors"))
    recipe["stages"]["pretrain"]["init_connector_from"] = str(case / "int8.safetensors")


def _edit_records(edit: Callable[[list[dict[str, Any]]], None]) -> Edit:
    def setup(recipe: Recipe, case: Path, sqa: Path) -> None:
        records = _records(case)
        edit(records)
        (case / "data.json").write_text(json.dumps(records))
    return setup


def _set(path: str, value: Any) -> Edit:
    """Set a dotted field of the recipe (components given by bare name stay bare)."""
    def setup(recipe: Recipe, case: Path, sqa: Path) -> None:
        *parents, last = path.split(".")
        node = recipe
        for key in parents:
            node = node[key]
        node[last] = value
    return setup


def _raw_yaml(text: str) -> Edit:
    def setup(recipe: Recipe, case: Path, sqa: Path) -> None:
        (case / "raw.yaml").write_text(text.replace("CASE", str(case)))
    return setup


def _rename_stage(recipe: Recipe, case: Path, sqa: Path) -> None:
    recipe["stages"]["pre/train"] = recipe["stages"].pop("pretrain")


def _data_path(recipe: Recipe, case: Path, sqa: Path) -> None:
    recipe["stages"]["pretrain"]["data"]["path"] = str(case / "absent.json")


def _image_root(recipe: Recipe, case: Path, sqa: Path) -> None:
    recipe["stages"]["pretrain"]["data"]["image_root"] = str(case / "no-images")


def _tokenizer(recipe: Recipe, case: Path, sqa: Path) -> None:
    recipe["model"]["llm"]["tokenizer"] = str(case / "no-tokenizer")


def _data_text(text: str) -> Edit:
    def setup(recipe: Recipe, case: Path, sqa: Path) -> None:
        (case / "data.json").write_text(text)
    return setup


def _outside_root(recipe: Recipe, case: Path, sqa: Path) -> None:
    (case / "secret.png").write_bytes((case / "images" / "0.png").read_bytes())
    _edit_records(lambda r: r[2].update(image="../secret.png"))(recipe, case, sqa)


def _corrupt(recipe: Recipe, case: Path, sqa: Path) -> None:
    (case / "images" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")


def _data_bytes(data: bytes) -> Edit:
    def setup(recipe: Recipe, case: Path, sqa: Path) -> None:
        (case / "data.json").write_bytes(data)
    return setup


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels in a few dozen bytes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _bomb(recipe: Recipe, case: Path, sqa: Path) -> None:
    (case / "images" / "0.png").write_bytes(_png_header(10_000, 10_000))


# Nine anchors, each nine times the one before: 9**9 values once expanded.
_ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]\n"
    for previous, name in zip("abcdefgh", "bcdefghi")
)


def _output_under_a_file(recipe: Recipe, case: Path, sqa: Path) -> list[str]:
    (case / "afile").write_text("not a folder\n")
    return ["--output-dir", str(case / "afile" / "run")]


def _eval_split(recipe: Recipe, case: Path, sqa: Path) -> None:
    recipe["eval"] = {"sqa": {"name": "scienceqa", "root": str(sqa), "split": "nope"}}


def _all_missing(recipe: Recipe, case: Path, sqa: Path) -> None:
    recipe["runtime"]["on_bad_sample"] = "skip"
    _edit_records(lambda r: [x.update(image="gone.png") for x in r])(recipe, case, sqa)


def _resume(recipe: Recipe, case: Path, sqa: Path) -> list[str]:
    return ["--resume"]


def _set_typo(recipe: Recipe, case: Path, sqa: Path) -> list[str]:
    return ["--set", "stages.pretrain.epoch=2"]


def _second_turn_role(records: list[dict[str, Any]]) -> None:
    records[0]["conversations"][1]["from"] = "bot"


def _set_arg(assignment: str) -> Edit:
    return lambda recipe, case, sqa: ["--set", assignment]


def _raw_bytes(data: bytes) -> Edit:
    def setup(recipe: Recipe, case: Path, sqa: Path) -> None:
        (case / "raw.yaml").write_bytes(data)
    return setup


def _raw_folder(recipe: Recipe, case: Path, sqa: Path) -> None:
    (case / "raw.yaml").mkdir()


def _extends_cycle(recipe: Recipe, case: Path, sqa: Path) -> None:
    (case / "parent.yaml").write_text("extends: raw.yaml\nname: parent\n")
    (case / "raw.yaml").write_text("extends: parent.yaml\nname: child\n")


def _data_folder(recipe: Recipe, case: Path, sqa: Path) -> None:
    (case / "data.json").unlink()
    (case / "data.json").mkdir()


def _jsonl_with_bad_line(recipe: Recipe, case: Path, sqa: Path) -> None:
    records = _records(case)
    lines = [json.dumps(records[0]), json.dumps(records[1])[:-9], *map(json.dumps, records[2:])]
    (case / "data.jsonl").write_text("\n".join(lines) + "\n")
    recipe["stages"]["pretrain"]["data"]["path"] = str(case / "data.jsonl")


def _empty_image(recipe: Recipe, case: Path, sqa: Path) -> None:
    (case / "images" / "0.png").write_bytes(b"")


def _image_folder(recipe: Recipe, case: Path, sqa: Path) -> None:
    (case / "images" / "1.png").unlink()
    (case / "images" / "1.png").mkdir()


def _recipe_missing(folder: Folder) -> list[str]:
    return ["validate", str(folder.path / "absent.yaml")]


# ------------------------------------------------------------ damage to a file or folder


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_bit(path: Path) -> None:
    """One bit in the middle of the file: in a safetensors file, a bit of a weight."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x04
    path.write_bytes(bytes(data))


def _pickle_weights(folder: Path) -> None:
    """Swap the safetensors weights for a pickle that holds an arbitrary object, as a
    checkpoint from elsewhere might: loading it with weights_only is refused."""
    (folder / "model.safetensors").unlink()
    torch.save({"weights": torch.zeros(2), "meta": SimpleNamespace(note="x")},
               folder / "pytorch_model.bin")


def _damage(name: str, how: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda folder: how(folder / name)


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(data)


def _remove(name: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        target = folder / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return damage


# ------------------------------------------------------------ saved models named by the recipe


def _model_folder(part: str, damage: Callable[[Path], None]) -> Argv:
    """`run` with the LLM ("llm") or the encoder ("clip") loaded from a damaged copy of a
    saved model folder."""
    def argv(folder: Folder) -> list[str]:
        copy = folder.copy(getattr(folder.inputs, part), part)
        damage(copy)
        role, name = ("llm", "hf_causal_lm") if part == "llm" else ("encoder", "hf_clip")
        folder.recipe["model"][role] = {"name": name, "path": str(copy)}
        return ["run", str(folder.recipe_file())]
    return argv


# ------------------------------------------------------------ a finished run, damaged


def _final(stage: str, name: str = "model.safetensors") -> str:
    return f"checkpoints/{stage}/final/{name}"


def _edit_resolved(field: str, value: Any) -> Callable[[Path], None]:
    """Change a dotted field of the run's recipe.resolved.yaml."""
    def damage(run_dir: Path) -> None:
        path = run_dir / "recipe.resolved.yaml"
        recipe = yaml.safe_load(path.read_text())
        *parents, last = field.split(".")
        node = recipe
        for key in parents:
            node = node[key]
        node[last] = value
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return damage


def _on_trained(command: str, damage: Callable[[Path], None], *extra: str) -> Argv:
    """``command`` (eval, chat, export or resume) on a copy of the finished run, damaged."""
    def argv(folder: Folder) -> list[str]:
        run_dir = folder.copy(folder.inputs.trained, "trained")
        resume_recipe = folder.path / "resume.yaml"
        shutil.copyfile(run_dir / "recipe.resolved.yaml", resume_recipe)
        damage(run_dir)
        return {
            "eval": ["eval", "scienceqa", "--run", str(run_dir), "--root", str(folder.inputs.sqa)],
            "chat": ["chat", str(run_dir), "--prompt", "What colour is the square?"],
            "export": ["export", str(run_dir), "--format", "llava-kit",
                       "--out", str(folder.path / "export")],
            "resume": ["run", str(resume_recipe), "--resume", "--output-dir", str(run_dir),
                       "--no-eval"],
        }[command] + list(extra)
    return argv


def _on_export(damage: Callable[[Path], None]) -> Argv:
    """`chat` with a damaged copy of the run's llava-kit export."""
    def argv(folder: Folder) -> list[str]:
        exported = folder.copy(folder.inputs.export, "exported")
        damage(exported)
        return ["chat", str(exported), "--prompt", "What colour is the square?"]
    return argv


def _untouched(run_dir: Path) -> None:
    """No damage: the case's fault is in its command line."""


def _image_file(data: bytes) -> Callable[[Path], None]:
    return lambda run_dir: (run_dir.parent / "question.png").write_bytes(data)


# `run --resume` takes the run's writer lock, which records the process that holds it.
_LOCK = ("trained/.writer.lock",)


def _full_export_folder(run_dir: Path) -> None:
    (run_dir.parent / "export").mkdir()
    (run_dir.parent / "export" / "notes.txt").write_text("an earlier export, kept\n")


def _results_exist(run_dir: Path) -> None:
    (run_dir / "results").mkdir(exist_ok=True)
    (run_dir / "results" / "scienceqa_test.json").write_text('{"acc": 90.0}\n')


# ------------------------------------------------------------ predictions and ScienceQA folders


def _test_pids(sqa: Path) -> list[str]:
    return [str(pid) for pid in json.loads((sqa / "pid_splits.json").read_text())["test"]]


def _predictions_of(pids: list[str]) -> str:
    return "".join(json.dumps({"question_id": pid, "text": "The answer is A."}) + "\n" for pid in pids)


def _score(
    predictions: Callable[[list[str]], str | bytes] | None = None,
    problems: Callable[[Path, Path], Path] | None = None,
    *extra: str,
) -> Argv:
    """`eval scienceqa --predictions preds.jsonl --problems ...`: good predictions of the
    test split unless ``predictions`` writes others; the shared ScienceQA unless
    ``problems(case, sqa)`` builds a folder."""
    def argv(folder: Folder) -> list[str]:
        sqa = folder.inputs.sqa
        text = (predictions or _predictions_of)(_test_pids(sqa))
        path = folder.path / "preds.jsonl"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        root = problems(folder.path, sqa) if problems else sqa
        return ["eval", "scienceqa", "--predictions", str(path), "--problems", str(root), *extra]
    return argv


def _problems_folder(files: dict[str, bytes | None]) -> Callable[[Path, Path], Path]:
    """A copy of ScienceQA's two JSON files, each replaced (bytes) or left out (None)."""
    def build(case: Path, sqa: Path) -> Path:
        root = case / "scienceqa"
        root.mkdir()
        for name in ("problems.json", "pid_splits.json"):
            data = files.get(name, (sqa / name).read_bytes())
            if data is not None:
                (root / name).write_bytes(data)
        return root
    return build


def _out_read_only(case: Path, sqa: Path) -> list[str]:
    target = case / "results"
    target.mkdir()
    target.chmod(0o555)
    return ["--out", str(target)]


def _score_into(out: Callable[[Path, Path], list[str]]) -> Argv:
    def argv(folder: Folder) -> list[str]:
        return _score()(folder) + out(folder.path, folder.inputs.sqa)
    return argv


def _out_under_a_file(case: Path, sqa: Path) -> list[str]:
    (case / "afile").write_text("not a folder\n")
    return ["--out", str(case / "afile" / "results")]


def _score_missing(folder: Folder) -> list[str]:
    return ["eval", "scienceqa", "--predictions", str(folder.path / "absent.jsonl"),
            "--problems", str(folder.inputs.sqa)]


def _combine_with(data: bytes) -> Argv:
    def argv(folder: Folder) -> list[str]:
        (folder.path / "other.json").write_bytes(data)
        return _score()(folder) + ["--combine", str(folder.path / "other.json"), "--out",
                                   str(folder.path / "combined")]
    return argv


def _convert(
    problems: Callable[[Path, Path], Path], *extra: str, out: str = "converted.json"
) -> Argv:
    """`data convert-scienceqa` of a ScienceQA folder built by ``problems``."""
    def argv(folder: Folder) -> list[str]:
        root = problems(folder.path, folder.inputs.sqa)
        return ["data", "convert-scienceqa", "--root", str(root), "--out", str(folder.path / out),
                *extra]
    return argv


# ------------------------------------------------------------ grid files and grid folders


def _grid(text: str, *extra: str, prepare: Callable[[Path], None] | None = None) -> Argv:
    """`grid grid.yaml --dry-run` for a grid file extending the case's recipe.yaml;
    ``prepare(grid_dir)`` fills the grid folder first."""
    def argv(folder: Folder) -> list[str]:
        folder.recipe_file()
        grid_file = folder.path / "grid.yaml"
        grid_file.write_text(text)
        grid_dir = folder.path / "grid"
        if prepare is not None:
            prepare(grid_dir)
        return ["grid", str(grid_file), "--output-dir", str(grid_dir), "--dry-run", *extra]
    return argv


_GRID = "extends: recipe.yaml\nname: g\n"
_GOOD_GRID = _GRID + "variants:\n  seed2: {runtime.seed: 2}\n"


def _grid_into_a_file(folder: Folder) -> list[str]:
    """A real grid run (no --dry-run) whose --output-dir is a file: it fails before training."""
    (folder.path / "afile").write_text("not a folder\n")
    argv = _grid(_GOOD_GRID)(folder)
    return [*argv[:argv.index("--output-dir") + 1], str(folder.path / "afile")]


def _cell_record(data: bytes) -> Callable[[Path], None]:
    def prepare(grid_dir: Path) -> None:
        cell = grid_dir / "cells" / "baseline"
        cell.mkdir(parents=True)
        (cell / "cell.json").write_bytes(data)
    return prepare


# ------------------------------------------------------------ data generation through an endpoint

_CONTEXTS = "".join(
    json.dumps({"id": f"c{index}", "image": f"{index}.jpg", "captions": ["A red square."],
                "instances": [{"category": "square", "bbox": [0.1, 0.1, 0.5, 0.5]}]}) + "\n"
    for index in range(2)
)


# Data generation appends to its outputs as replies arrive, so a job whose every request
# failed leaves them, empty, for the rerun to fill.
_GENERATED = ("generated.jsonl", "generated.rejects.jsonl")


def _generate(
    url: str, context: str | bytes = _CONTEXTS, *extra: str, data_type: str = "detail",
    prepare: Callable[[Path], None] | None = None,
) -> Argv:
    """`data generate` from contexts.jsonl into generated.jsonl, against the endpoint named
    ``url`` (a key of ``Inputs.urls``), retrying once; ``prepare(case)`` adds files first."""
    def argv(folder: Folder) -> list[str]:
        path = folder.path / "contexts.jsonl"
        path.write_bytes(context if isinstance(context, bytes) else context.encode())
        if prepare is not None:
            prepare(folder.path)
        return ["data", "generate", "--context", str(path), "--type", data_type,
                "--out", str(folder.path / "generated.jsonl"), "--url", folder.inputs.urls[url],
                "--model", "tiny", "--max-retries", "1", "--timeout", "10", *extra]
    return argv


def _cache_file(data: bytes) -> Callable[[Path], None]:
    return lambda case: (case / "generated.cache.jsonl").write_bytes(data)


def _generated_file(data: bytes) -> Callable[[Path], None]:
    return lambda case: (case / "generated.jsonl").write_bytes(data)


# Root may write into a folder without write permission; only other users see the refusal.
_AS_USER = (pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders"),)


CASES = [
    # ------------------------------------------------------------------ recipes
    Case("unknown_top_level_key", run(_set("modle", 1)), ("modle",)),
    Case("unknown_encoder", run(_set("model.encoder.name", "clip_vit")), ("clip_vit",)),
    Case("dotted_path_as_component", run(_set("model.connector", "os.system")), ("os.system",)),
    Case("class_path_as_component", run(_set("model.connector", "llava_kit.connectors.mlp.MLPConnector")),
         ("llava_kit.connectors.mlp.MLPConnector",)),
    Case("batch_not_divisible", run(_set("stages.pretrain.batch.micro_size", 3)),
         ("global_size", "micro_size")),
    Case("trainable_typo", run(_set("stages.pretrain.trainable", ["conector"])), ("conector",)),
    Case("int8_connector_to_start_from", run(_int8_connector),
         ("int8.safetensors", "not floating point", "proj.0.weight (I8)")),
    Case("negative_lr", run(_set("stages.pretrain.optimizer.lr", -1.0)), ("lr",)),
    Case("unknown_deepspeed_preset", run(_set("runtime.deepspeed", "zero4")),
         ("deepspeed", "zero4")),
    Case("python_tag_in_yaml", run(_raw_yaml("name: !!python/object/apply:os.system ['touch CASE/pwned']\n")),
         ("invalid YAML",)),
    Case("yaml_syntax_error", run(_raw_yaml("name: [unclosed\nmodel: {}\n")), ("raw.yaml", "line 2")),
    Case("set_unknown_field", run(_set_typo), ("epoch",)),
    Case("yaml_alias_bomb", run(_raw_yaml(_ALIAS_BOMB)), ("raw.yaml", "more than 100,000 values")),
    Case("yaml_recursive_alias", run(_raw_yaml("name: &a [1, *a]\n")), ("raw.yaml", "recursive")),
    Case("absurd_connector_width", run(_set("model.connector", "mlp100000000x_gelu")),
         ("model.connector.depth",)),
    Case("infinite_epochs", run(_set("stages.pretrain.epochs", float("inf"))), ("epochs",)),
    Case("missing_tokenizer", run(_tokenizer), ("no-tokenizer",)),
    Case("stage_name_with_slash", run(_rename_stage), ("pre/train",)),
    Case("bad_on_bad_sample", run(_set("runtime.on_bad_sample", "ignore")), ("on_bad_sample",)),
    Case("bad_on_nan", run(_set("runtime.on_nan", "zero")), ("on_nan",)),
    Case("no_enabled_stage", run(_set("stages.pretrain.enabled", False)), ("no enabled stage",)),
    Case("llm_option_typo", run(_set("model.llm.tokeniser", "x")), ("tokeniser",)),
    Case("resume_without_run", run(_resume), ("cannot resume",)),
    Case("output_dir_under_a_file", run(_output_under_a_file),
         ("Not a directory", "afile/run", "a part of that path is a file")),
    # ---------------------------------------------------------------- data sets
    Case("data_file_missing", run(_data_path), ("absent.json",)),
    Case("invalid_json", run(_data_text("[{\"id\": ")), ("invalid JSON", "data.json")),
    Case("deeply_nested_json", run(_data_text("[" * 100_000 + "]" * 100_000)),
         ("data.json", "nested too deeply")),
    Case("data_not_utf8", run(_data_bytes(b'[{"id": "\xff"}]')), ("data.json", "not UTF-8")),
    Case("decompression_bomb_image", check(_bomb), ("'s0'", "0.png", "10000 x 10000 pixels")),
    Case("records_not_a_list", run(_data_text("{\"id\": 1}")), ("expected a JSON list",)),
    Case("image_root_missing", run(_image_root), ("no-images", "image_root")),
    Case("missing_image", run(_edit_records(lambda r: r[1].update(image="missing.png"))),
         ("'s1'", "missing.png", "missing images")),
    Case("image_outside_root", run(_outside_root), ("'s2'", "outside the image root")),
    Case("absolute_image_path", run(_edit_records(lambda r: r[2].update(image="/etc/hostname"))),
         ("'s2'", "outside the image root")),
    Case("corrupt_image", check(_corrupt), ("'s0'", "cannot read image", "0.png")),
    Case("no_assistant_turn", run(_edit_records(lambda r: r[3].update(conversations=r[3]["conversations"][:1]))),
         ("'s3'", "no gpt answer")),
    Case("two_markers_one_image", run(_edit_records(lambda r: r[4]["conversations"][0].update(value="<image>\n<image>\nWhat?"))),
         ("'s4'", "marker")),
    Case("empty_answer", run(_edit_records(lambda r: r[5]["conversations"][1].update(value=" "))),
         ("'s5'", "empty")),
    Case("truncated_before_answer", run(_set("model.max_length", 16)),
         ("'s0'", "model.max_length is 16")),
    Case("record_without_id", run(_edit_records(lambda r: r[0].pop("id"))),
         ("record [0]", "'id'")),
    Case("unknown_role", run(_edit_records(_second_turn_role)), ("'s0'", "'bot'")),
    Case("eval_unknown_split", run(_eval_split), ("eval.sqa", "'nope'")),
    Case("skip_policy_nothing_left", run(_all_missing), ("every sample is bad",)),
    # ---------------------------------------------------------- more recipes, other commands
    Case("set_wrong_type", run(_set_arg("stages.pretrain.epochs=many")), ("stages.pretrain.epochs",)),
    Case("set_without_equals", run(_set_arg("stages.pretrain.epochs")), ("stages.pretrain.epochs", "KEY=VALUE")),
    Case("validate_unknown_field", validate(_set("stages.pretrain.lr", 0.1)), ("stages.pretrain.lr",)),
    Case("plan_unknown_connector", plan(_set("model.connector", "mlp2x_relu")), ("mlp2x_relu",)),
    Case("recipe_not_utf8", validate(_raw_bytes(b"name: caf\xe9\n")), ("raw.yaml", "UTF-8")),
    Case("recipe_missing", _recipe_missing, ("absent.yaml", "not found")),
    Case("recipe_is_a_folder", validate(_raw_folder), ("raw.yaml",)),
    Case("extends_missing", validate(_raw_yaml("extends: parent.yaml\nname: x\n")), ("parent.yaml",)),
    Case("extends_cycle", validate(_extends_cycle), ("cycle",)),
    Case("recipe_is_a_list", validate(_raw_yaml("- name: x\n")), ("raw.yaml", "mapping")),
    # ------------------------------------------------------------ saved model folders
    Case("llm_weights_truncated", _model_folder("llm", _damage("model.safetensors", _truncate)),
         ("llm option 'path'", "llm/model.safetensors", "cannot read the weights")),
    Case("llm_weights_pickle", _model_folder("llm", _pickle_weights),
         ("llm option 'path'", "llm/pytorch_model.bin", "weights_only")),
    Case("llm_config_not_json", _model_folder("llm", _write("config.json", b'{"model_type": "lla')),
         ("config.json",)),
    Case("llm_tokenizer_truncated", _model_folder("llm", _damage("tokenizer.json", _truncate)),
         ("cannot load the tokenizer", "/llm'")),
    Case("llm_folder_without_weights", _model_folder("llm", _remove("model.safetensors")),
         ("llm option 'path'", "model.safetensors")),
    Case("encoder_weights_truncated", _model_folder("clip", _damage("model.safetensors", _truncate)),
         ("hf_clip", "clip/model.safetensors", "cannot read the weights")),
    Case("encoder_without_processor", _model_folder("clip", _remove("preprocessor_config.json")),
         ("hf_clip", "preprocessor_config.json")),
    # ------------------------------------------------------------ data and images, more
    Case("data_is_a_folder", run(_data_folder), ("data.json",)),
    Case("jsonl_line_broken", check(_jsonl_with_bad_line), ("data.jsonl", "line 2")),
    Case("empty_image_file", check(_empty_image), ("'s0'", "0.png")),
    Case("image_is_a_folder", check(_image_folder), ("'s1'", "1.png")),
    Case("convert_without_problems_json", _convert(_problems_folder({"problems.json": None})),
         ("problems.json",)),
    Case("convert_unknown_split", _convert(_problems_folder({}), "--split", "dev"),
         ("'dev'", "pid_splits.json")),
    Case("convert_problems_not_utf8", _convert(_problems_folder({"problems.json": b'{"1": "\xff"}'})),
         ("problems.json", "UTF-8")),
    Case("convert_unknown_format", _convert(_problems_folder({}), "--format", "QXM-A"),
         ("QXM-A",)),
    Case("convert_over_an_existing_file", _convert(_problems_folder({}), out="data.json"),
         ("--out", "data.json already exists", "--overwrite")),
    # ------------------------------------------------------------ finished runs, damaged
    Case("eval_flipped_bit", _on_trained("eval", _damage(_final("finetune"), _flip_bit)),
         (_final("finetune"), "checksum")),
    Case("chat_flipped_bit", _on_trained("chat", _damage(_final("finetune"), _flip_bit)),
         (_final("finetune"), "checksum")),
    Case("export_flipped_bit", _on_trained("export", _damage(_final("pretrain"), _flip_bit)),
         (_final("pretrain"), "checksum")),
    Case("chat_connector_flipped_bit",
         _on_trained("chat", _damage("checkpoints/pretrain/connector.safetensors", _flip_bit)),
         ("connector.safetensors", "checksum")),
    Case("eval_final_missing", _on_trained("eval", _remove("checkpoints/finetune/final")),
         ("'finetune'", "checkpoints/finetune/final")),
    Case("chat_final_missing", _on_trained("chat", _remove("checkpoints/finetune/final")),
         ("'finetune'", "checkpoints/finetune/final")),
    Case("export_final_missing", _on_trained("export", _remove("checkpoints/pretrain/final")),
         ("'pretrain'", "checkpoints/pretrain/final")),
    Case("eval_shapes_changed",
         _on_trained("eval", _edit_resolved("model.llm.config.intermediate_size", 48)),
         ("checkpoints/finetune/final", "recipe.resolved.yaml")),
    Case("chat_shapes_changed",
         _on_trained("chat", _edit_resolved("model.llm.config.hidden_size", 64)),
         ("checkpoints/pretrain/final", "recipe.resolved.yaml")),
    Case("export_connector_changed", _on_trained("export", _edit_resolved("model.connector", "linear")),
         ("checkpoints/pretrain/final", "recipe.resolved.yaml")),
    Case("chat_resolved_recipe_broken",
         _on_trained("chat", _write("recipe.resolved.yaml", b"model: [unclosed\n")),
         ("trained/recipe.resolved.yaml", "invalid YAML")),
    Case("chat_checksums_missing", _on_trained("chat", _remove(_final("finetune", "checksums.json"))),
         ("checksums.json",)),
    Case("chat_image_missing", _on_trained("chat", _untouched, "--image", "absent.png"),
         ("absent.png",)),
    Case("chat_image_corrupt",
         _on_trained("chat", _image_file(b"\x89PNG\r\n\x1a\n cut"), "--image", "question.png"),
         ("question.png", "cannot read image")),
    Case("chat_not_a_run", _on_trained("chat", _remove("recipe.resolved.yaml")),
         ("trained", "neither a run directory")),
    Case("export_into_a_full_folder", _on_trained("export", _full_export_folder),
         ("export already exists and is not an empty folder",)),
    Case("chat_export_weights_truncated", _on_export(_damage("model.safetensors", _truncate)),
         ("exported/model.safetensors",)),
    Case("chat_export_manifest_not_json", _on_export(_write("llava_kit_export.json", b'{"form')),
         ("llava_kit_export.json", "invalid JSON")),
    Case("chat_export_recipe_missing", _on_export(_remove("recipe.yaml")), ("recipe.yaml",)),
    Case("eval_results_exist", _on_trained("eval", _results_exist), ("results already exist",)),
    Case("resume_flipped_bit", _on_trained("resume", _damage(_final("pretrain"), _flip_bit)),
         (_final("pretrain"), "checksum"), rewrites=_LOCK),
    Case("resume_changed_recipe",
         _on_trained("resume", _untouched, "--set", "stages.finetune.optimizer.lr=0.5"),
         ("stages.finetune.optimizer.lr",), rewrites=_LOCK),
    Case("resume_without_resolved_recipe", _on_trained("resume", _remove("recipe.resolved.yaml")),
         ("recipe.resolved.yaml",), rewrites=_LOCK),
    Case("resume_metrics_not_utf8", _on_trained("resume", _write("metrics.jsonl", b"\xff\xfe{}\n")),
         ("metrics.jsonl", "UTF-8"), rewrites=_LOCK),
    # ------------------------------------------------------------ predictions files
    Case("predictions_not_utf8", _score(lambda pids: b'{"question_id": "\xff", "text": "A"}\n'),
         ("preds.jsonl", "UTF-8")),
    Case("predictions_nested_too_deeply", _score(lambda pids: "[" * 100_000 + "]" * 100_000 + "\n"),
         ("preds.jsonl", "nested too deeply")),
    Case("predictions_wrong_shape", _score(lambda pids: json.dumps(pids) + "\n"),
         ("preds.jsonl:1", "JSON object")),
    Case("predictions_text_not_a_string",
         _score(lambda pids: json.dumps({"question_id": pids[0], "text": 3}) + "\n"),
         ("preds.jsonl:1", "'text'")),
    Case("predictions_unknown_ids", _score(lambda pids: _predictions_of(["no-such-pid"])),
         ("preds.jsonl", "'no-such-pid'")),
    Case("predictions_duplicate_id", _score(lambda pids: _predictions_of([pids[0], pids[0]])),
         ("preds.jsonl:2", "appears a second time")),
    Case("predictions_missing", _score_missing, ("absent.jsonl",)),
    Case("problems_without_problems_json", _score(None, _problems_folder({"problems.json": None})),
         ("problems.json",)),
    Case("problems_json_invalid", _score(None, _problems_folder({"problems.json": b'{"1": {'})),
         ("problems.json", "invalid JSON")),
    Case("predictions_unknown_split", _score(None, None, "--split", "dev"),
         ("pid_splits.json", "'dev'")),
    Case("eval_out_read_only", _score_into(_out_read_only),
         ("Permission denied", "results/scienceqa_test"), marks=_AS_USER),
    Case("eval_out_under_a_file", _score_into(_out_under_a_file), ("afile/results", "Not a directory")),
    Case("combine_file_not_json", _combine_with(b"{\"results\": {"), ("other.json", "invalid JSON")),
    Case("combine_file_not_utf8", _combine_with(b'{"results": {"\xff": 1}}'), ("other.json", "UTF-8")),
    # ------------------------------------------------------------ grid files and grid folders
    Case("grid_unknown_field", _grid(_GOOD_GRID + "repeats: 3\n"), ("grid.yaml", "'repeats'")),
    Case("grid_axis_without_values", _grid(_GRID + "axes:\n  runtime.seed: []\n"),
         ("grid.yaml", "axes.runtime.seed")),
    Case("grid_cell_name_clash",
         _grid(_GRID + "axes:\n  stages.pretrain.optimizer.lr: [0.001, '0.001']\n"),
         ("grid.yaml", "'lr-0.001'")),
    Case("grid_cell_wrong_type", _grid(_GRID + "variants:\n  many: {stages.pretrain.epochs: lots}\n"),
         ("grid.yaml", "'many'", "stages.pretrain.epochs")),
    Case("grid_cell_unknown_field", _grid(_GRID + "variants:\n  typo: {runtime.sed: 2}\n"),
         ("'typo'", "runtime.sed")),
    Case("grid_extends_missing", _grid("extends: nope.yaml\nname: g\nvariants:\n  a: {runtime.seed: 2}\n"),
         ("grid.yaml", "nope.yaml")),
    Case("grid_only_unknown_cell", _grid(_GOOD_GRID, "--only", "seed3"), ("'seed3'",)),
    Case("grid_yaml_syntax_error", _grid(_GRID + "variants: {a: [\n"), ("grid.yaml", "line")),
    Case("grid_cell_record_not_utf8", _grid(_GOOD_GRID, prepare=_cell_record(b"\xff\xfe")),
         ("cells/baseline/cell.json", "UTF-8")),
    Case("grid_cell_record_not_json", _grid(_GOOD_GRID, prepare=_cell_record(b'{"cell": "base')),
         ("cells/baseline/cell.json", "invalid JSON", "run the cell again")),
    Case("grid_cell_record_not_an_object", _grid(_GOOD_GRID, prepare=_cell_record(b"[1]")),
         ("cells/baseline/cell.json", "not a cell record")),
    Case("grid_output_dir_is_a_file", _grid_into_a_file, ("afile/cells", "Not a directory")),
    Case("grid_slurm_warning_after_the_limit",
         _grid(_GOOD_GRID, "--executor", "slurm", "--slurm", "time=5,warning=300"),
         ("--slurm warning=300", "time limit (5 min)")),
    Case("run_slurm_unknown_option",
         run(lambda recipe, case, sqa: ["--executor", "slurm", "--slurm", "gpus=8", "--dry-run"]),
         ("--slurm: unknown key 'gpus'", "gpus_per_node")),
    # ------------------------------------------------------------ chat endpoints (data generate)
    Case("endpoint_refuses_connections", _generate("refused"),
         ("all 2 request(s) to http://127.0.0.1:", "Connection refused", "--url"),
         leaves=_GENERATED),
    Case("endpoint_returns_non_json", _generate("non_json"),
         ("all 2 request(s)", "malformed reply from http://127.0.0.1:"), leaves=_GENERATED),
    Case("endpoint_returns_http_500", _generate("http_500"),
         ("all 2 request(s)", "gave up after 2 attempts", "HTTP 500 from http://127.0.0.1:"),
         leaves=_GENERATED),
    Case("endpoint_url_without_scheme", _generate("no_scheme"), ("'localhost:9/v1'", "http(s)")),
    Case("endpoint_cache_not_utf8", _generate("ok", _CONTEXTS, prepare=_cache_file(b"\xff\n")),
         ("generated.cache.jsonl", "UTF-8")),
    Case("endpoint_cache_damaged", _generate("ok", _CONTEXTS, prepare=_cache_file(b'{"key": 1}\n')),
         ("generated.cache.jsonl:1", "request-cache record")),
    Case("generated_records_not_utf8", _generate("ok", _CONTEXTS, prepare=_generated_file(b"\xff\n")),
         ("generated.jsonl", "UTF-8")),
    Case("endpoint_key_variable_unset", _generate("ok", _CONTEXTS, "--key-env", "LLAVA_KIT_NO_SUCH_KEY"),
         ("LLAVA_KIT_NO_SUCH_KEY",)),
    Case("context_not_json_lines", _generate("ok", "captions: a red square\n"),
         ("contexts.jsonl", "line 1")),
    Case("context_record_without_captions", _generate("ok", json.dumps({"id": "c0", "image": "0.jpg"}) + "\n"),
         ("contexts.jsonl", "'c0'", "captions")),
    Case("context_not_utf8", _generate("ok", b'{"id": "\xff"}\n'), ("contexts.jsonl", "UTF-8")),
    Case("generate_unknown_type", _generate("ok", data_type="poems"), ("'poems'",)),
]


@pytest.fixture(scope="module")
def inputs(
    tmp_path_factory: pytest.TempPathFactory, sqa: Path, kit: SimpleNamespace
) -> Iterator[Inputs]:
    """One tiny trained run, one saved LLM and encoder, and endpoints that misbehave in
    each way a case needs; cases copy what they damage."""
    from transformers import AutoTokenizer

    from llava_kit.export import export_run
    from llava_kit.pipeline import run_recipe
    from llava_kit.recipes import load_recipe, recipe_to_yaml
    from llava_kit.tiny.llm import save_tiny_llama
    from llava_kit.tiny.vision import save_tiny_clip

    shared = tmp_path_factory.mktemp("bad_inputs_shared")
    raw = kit.tiny_recipe(sqa)
    for stage in raw["stages"].values():
        stage["data"]["limit"] = 8  # one optimizer step a stage: the run only has to exist
    recipe = kit.save_recipe(shared / "tiny.yaml", raw)
    loaded = load_recipe(recipe)
    trained = run_recipe(loaded, recipe_yaml=recipe_to_yaml(loaded), run_dir=shared / "trained",
                         evaluate=False).run_dir
    export = shared / "export"
    export_run(trained, "llava-kit", export)
    tokenizer = AutoTokenizer.from_pretrained(sqa / "tokenizer")
    llm = save_tiny_llama(shared / "llm", tokenizer, hidden_size=32, num_layers=2,
                          intermediate_size=64)
    clip = save_tiny_clip(shared / "clip", image_size=32, hidden_size=32, num_layers=2,
                          intermediate_size=64)
    with ExitStack() as stack:
        failing, malformed, ok = (stack.enter_context(LocalChatServer()) for _ in range(3))
        failing.fail(1000, 500)
        malformed.malform(1000)
        urls = {"ok": ok.url, "http_500": failing.url, "non_json": malformed.url,
                "refused": f"http://127.0.0.1:{_closed_port()}/v1", "no_scheme": "localhost:9/v1"}
        yield Inputs(sqa, trained, export, llm, clip, urls)


def _closed_port() -> int:
    """A port nothing listens on: connections to it are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory, inputs: Inputs, kit: SimpleNamespace
) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("bad_inputs")
    planned, before = [], {}
    for case in CASES:
        path = base / case.name
        path.mkdir()
        folder = Folder(path, kit.llava_recipe(inputs.sqa, path), inputs)
        planned.append((case.name, case.argv(folder), path))
        before[case.name] = kit.snapshot(path)
    results = kit.run_cli_cases(planned, base)
    return {name: (results[name], before[name], base / name) for name in results}


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 80
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [pytest.param(case, marks=case.marks, id=case.name) for case in CASES])
def test_bad_input_stops_cleanly(case: Case, outcomes: dict[str, Any], kit: SimpleNamespace) -> None:
    result, before, folder = outcomes[case.name]
    shown = result["stdout"] + result["stderr"]
    assert result["code"] != 0, shown
    assert "Traceback" not in shown, shown
    flat = " ".join(shown.split())  # rich wraps long lines; a path is never split
    for text in case.expected:
        assert text in flat, f"{text!r} not in:\n{shown}"
    # Nothing written and nothing changed: every file there before is byte-identical, and
    # no run directory, half-written file or other side effect appeared.
    after = kit.snapshot(folder)
    empty = hashlib.sha256(b"").hexdigest()
    for name in case.leaves:
        assert after.pop(name, empty) == empty, f"{name} is not empty"
    for name in case.rewrites:
        assert (name in after) == (name in before), name
        after[name] = before.get(name, "")
    assert after == before


def test_the_good_data_set_passes(tmp_path: Path, sqa: Path, kit: SimpleNamespace) -> None:
    """The same harness on the untouched data: the cases above fail for their own reason."""
    recipe = kit.llava_recipe(sqa, tmp_path)
    path = kit.save_recipe(tmp_path / "recipe.yaml", recipe)
    result = kit.run_cli_cases([("good", ["data", "check", str(path)], tmp_path)], tmp_path)["good"]
    assert result["code"] == 0, result["stdout"] + result["stderr"]
    assert "data check: no problems (stages.pretrain 8 samples)" in result["stdout"]
