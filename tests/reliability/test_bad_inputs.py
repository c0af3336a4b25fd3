"""Bad recipes and bad data sets through the real CLI: each must stop with a non-zero exit,
a message naming the field or the sample, no traceback, and no run directory left behind."""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest


Recipe = dict[str, Any]


@dataclass(frozen=True)
class Case:
    name: str
    command: str  # "run" or "check" (`llava-kit data check`)
    setup: Callable[[Recipe, Path, Path], list[str] | None]  # (recipe, case dir, sqa) -> extra args
    expected: tuple[str, ...]  # all must appear in the output


def _records(case: Path) -> list[dict[str, Any]]:
    return json.loads((case / "data.json").read_text())


def _edit_records(edit: Callable[[list[dict[str, Any]]], None]) -> Callable[[Recipe, Path, Path], None]:
    def setup(recipe: Recipe, case: Path, sqa: Path) -> None:
        records = _records(case)
        edit(records)
        (case / "data.json").write_text(json.dumps(records))
    return setup


def _set(path: str, value: Any) -> Callable[[Recipe, Path, Path], None]:
    """Set a dotted field of the recipe (components given by bare name stay bare)."""
    def setup(recipe: Recipe, case: Path, sqa: Path) -> None:
        *parents, last = path.split(".")
        node = recipe
        for key in parents:
            node = node[key]
        node[last] = value
    return setup


def _raw_yaml(text: str) -> Callable[[Recipe, Path, Path], None]:
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


def _data_text(text: str) -> Callable[[Recipe, Path, Path], None]:
    def setup(recipe: Recipe, case: Path, sqa: Path) -> None:
        (case / "data.json").write_text(text)
    return setup


def _outside_root(recipe: Recipe, case: Path, sqa: Path) -> None:
    (case / "secret.png").write_bytes((case / "images" / "0.png").read_bytes())
    _edit_records(lambda r: r[2].update(image="../secret.png"))(recipe, case, sqa)


def _corrupt(recipe: Recipe, case: Path, sqa: Path) -> None:
    (case / "images" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")


def _data_bytes(data: bytes) -> Callable[[Recipe, Path, Path], None]:
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


CASES = [
    # ------------------------------------------------------------------ recipes
    Case("unknown_top_level_key", "run", _set("modle", 1), ("modle",)),
    Case("unknown_encoder", "run", _set("model.encoder.name", "clip_vit"), ("clip_vit",)),
    Case("dotted_path_as_component", "run", _set("model.connector", "os.system"), ("os.system",)),
    Case("class_path_as_component", "run",
         _set("model.connector", "llava_kit.connectors.mlp.MLPConnector"),
         ("llava_kit.connectors.mlp.MLPConnector",)),
    Case("batch_not_divisible", "run", _set("stages.pretrain.batch.micro_size", 3),
         ("global_size", "micro_size")),
    Case("trainable_typo", "run", _set("stages.pretrain.trainable", ["conector"]), ("conector",)),
    Case("negative_lr", "run", _set("stages.pretrain.optimizer.lr", -1.0), ("lr",)),
    Case("unknown_deepspeed_preset", "run", _set("runtime.deepspeed", "zero4"),
         ("deepspeed", "zero4")),
    Case("python_tag_in_yaml", "run",
         _raw_yaml("name: !!python/object/apply:os.system ['touch CASE/pwned']\n"),
         ("invalid YAML",)),
    Case("yaml_syntax_error", "run", _raw_yaml("name: [unclosed\nmodel: {}\n"), ("line",)),
    Case("set_unknown_field", "run", _set_typo, ("epoch",)),
    Case("yaml_alias_bomb", "run", _raw_yaml(_ALIAS_BOMB), ("raw.yaml", "more than 100,000 values")),
    Case("yaml_recursive_alias", "run", _raw_yaml("name: &a [1, *a]\n"), ("raw.yaml", "recursive")),
    Case("absurd_connector_width", "run", _set("model.connector", "mlp100000000x_gelu"),
         ("model.connector.depth",)),
    Case("infinite_epochs", "run", _set("stages.pretrain.epochs", float("inf")), ("epochs",)),
    Case("missing_tokenizer", "run", _tokenizer, ("no-tokenizer",)),
    Case("stage_name_with_slash", "run", _rename_stage, ("pre/train",)),
    Case("bad_on_bad_sample", "run", _set("runtime.on_bad_sample", "ignore"), ("on_bad_sample",)),
    Case("bad_on_nan", "run", _set("runtime.on_nan", "zero"), ("on_nan",)),
    Case("no_enabled_stage", "run", _set("stages.pretrain.enabled", False), ("no enabled stage",)),
    Case("llm_option_typo", "run", _set("model.llm.tokeniser", "x"), ("tokeniser",)),
    Case("resume_without_run", "run", _resume, ("cannot resume",)),
    Case("output_dir_under_a_file", "run", _output_under_a_file,
         ("Not a directory", "afile/run", "a part of that path is a file")),
    # ---------------------------------------------------------------- data sets
    Case("data_file_missing", "run", _data_path, ("absent.json",)),
    Case("invalid_json", "run", _data_text("[{\"id\": "), ("invalid JSON", "data.json")),
    Case("deeply_nested_json", "run", _data_text("[" * 100_000 + "]" * 100_000),
         ("data.json", "nested too deeply")),
    Case("data_not_utf8", "run", _data_bytes(b'[{"id": "\xff"}]'), ("data.json", "not UTF-8")),
    Case("decompression_bomb_image", "check", _bomb, ("'s0'", "0.png", "10000 x 10000 pixels")),
    Case("records_not_a_list", "run", _data_text("{\"id\": 1}"), ("expected a JSON list",)),
    Case("image_root_missing", "run", _image_root, ("no-images", "image_root")),
    Case("missing_image", "run", _edit_records(lambda r: r[1].update(image="missing.png")),
         ("'s1'", "missing.png", "missing images")),
    Case("image_outside_root", "run", _outside_root, ("'s2'", "outside the image root")),
    Case("absolute_image_path", "run", _edit_records(lambda r: r[2].update(image="/etc/hostname")),
         ("'s2'", "outside the image root")),
    Case("corrupt_image", "check", _corrupt, ("'s0'", "cannot read image", "0.png")),
    Case("no_assistant_turn", "run",
         _edit_records(lambda r: r[3].update(conversations=r[3]["conversations"][:1])),
         ("'s3'", "no gpt answer")),
    Case("two_markers_one_image", "run",
         _edit_records(lambda r: r[4]["conversations"][0].update(value="<image>\n<image>\nWhat?")),
         ("'s4'", "marker")),
    Case("empty_answer", "run", _edit_records(lambda r: r[5]["conversations"][1].update(value=" ")),
         ("'s5'", "empty")),
    Case("truncated_before_answer", "run", _set("model.max_length", 16),
         ("'s0'", "model.max_length is 16")),
    Case("record_without_id", "run", _edit_records(lambda r: r[0].pop("id")),
         ("record [0]", "'id'")),
    Case("unknown_role", "run", _edit_records(_second_turn_role), ("'s0'", "'bot'")),
    Case("eval_unknown_split", "run", _eval_split, ("eval.sqa", "'nope'")),
    Case("skip_policy_nothing_left", "run", _all_missing, ("every sample is bad",)),
]


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory, sqa: Path, kit: SimpleNamespace
) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("bad_inputs")
    planned, before = [], {}
    for case in CASES:
        folder = base / case.name
        folder.mkdir()
        recipe = kit.llava_recipe(sqa, folder)
        extra = case.setup(recipe, folder, sqa) or []
        path = folder / "raw.yaml"
        if not path.exists():
            path = kit.save_recipe(folder / "recipe.yaml", recipe)
        argv = ["data", "check", str(path)] if case.command == "check" else ["run", str(path)]
        planned.append((case.name, argv + extra, folder))
        before[case.name] = kit.snapshot(folder)
    results = kit.run_cli_cases(planned, base)
    return {name: (results[name], before[name], base / name) for name in results}


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_stops_cleanly(case: Case, outcomes: dict[str, Any], kit: SimpleNamespace) -> None:
    result, before, folder = outcomes[case.name]
    shown = result["stdout"] + result["stderr"]
    assert result["code"] != 0, shown
    for text in case.expected:
        assert text in shown, f"{text!r} not in:\n{shown}"
    assert "Traceback" not in shown
    # Nothing written: no run directory, no half-written files, no side effects.
    assert kit.snapshot(folder) == before
    assert not (folder / "run").exists()


def test_the_good_data_set_passes(tmp_path: Path, sqa: Path, kit: SimpleNamespace) -> None:
    """The same harness on the untouched data: the cases above fail for their own reason."""
    recipe = kit.llava_recipe(sqa, tmp_path)
    path = kit.save_recipe(tmp_path / "recipe.yaml", recipe)
    result = kit.run_cli_cases([("good", ["data", "check", str(path)], tmp_path)], tmp_path)["good"]
    assert result["code"] == 0, result["stdout"] + result["stderr"]
    assert "data check: no problems (stages.pretrain 8 samples)" in result["stdout"]
