"""Files from other people cannot run code: an audit of the package and its loaders."""

from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import typer.main
import yaml

import llava_kit
from llava_kit.errors import RecipeError
from llava_kit.llms.hf_causal_lm import HFCausalLMOptions
from llava_kit.encoders.hf_clip import HFCLIPOptions
from llava_kit.recipes.yaml_io import _UniqueKeyLoader, parse_yaml
from llava_kit.train.checkpoint import save_checkpoint, load_checkpoint

PACKAGE = Path(llava_kit.__file__).parent
MARKER: list[str] = []


def _calls() -> list[tuple[Path, ast.Call]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                found.append((path, node))
    return found


def _name(call: ast.Call) -> str:
    return ast.unparse(call.func)


def test_every_torch_load_is_weights_only() -> None:
    loads = [(path, call) for path, call in _calls() if _name(call) == "torch.load"]
    assert loads, "the audit found no torch.load at all; is it looking at the package?"
    for path, call in loads:
        flags = {kw.arg: kw.value for kw in call.keywords}
        value = flags.get("weights_only")
        assert isinstance(value, ast.Constant) and value.value is True, f"{path}:{call.lineno}"


def test_no_pickle_eval_exec_or_dynamic_imports_in_the_package() -> None:
    banned = {"pickle.load", "pickle.loads", "eval", "exec", "__import__",
              "importlib.import_module", "yaml.unsafe_load", "yaml.full_load"}
    hits = [f"{path}:{call.lineno} {_name(call)}" for path, call in _calls() if _name(call) in banned]
    assert hits == []


def test_yaml_is_read_with_a_safe_loader() -> None:
    loads = [(path, call) for path, call in _calls() if _name(call) == "yaml.load"]
    for path, call in loads:
        loader = {kw.arg: ast.unparse(kw.value) for kw in call.keywords}.get("Loader")
        assert loader == "_UniqueKeyLoader", f"{path}:{call.lineno}"
    assert issubclass(_UniqueKeyLoader, yaml.SafeLoader)
    with pytest.raises(RecipeError, match="invalid YAML"):
        parse_yaml("name: !!python/object/apply:os.getcwd []\n", "recipe.yaml")


def test_remote_code_is_off_unless_the_recipe_asks() -> None:
    assert HFCausalLMOptions(path="x").trust_remote_code is False
    assert HFCLIPOptions(path="x").trust_remote_code is False
    for path, call in _calls():
        for kw in call.keywords:
            if kw.arg == "trust_remote_code":
                assert not (isinstance(kw.value, ast.Constant) and kw.value.value is True), (
                    f"{path}:{call.lineno}"
                )


class _Payload:
    """Unpickling this would run code; a weights-only load must refuse it."""

    def __reduce__(self):  # noqa: ANN204
        return (MARKER.append, ("executed",))


def _checkpoint_with_optimizer_state(folder: Path, state: object) -> Path:
    """A complete step checkpoint, with matching checksums, whose optimizer.pt holds
    ``state``: what a hostile author can hand over, past every integrity check."""
    return save_checkpoint(folder, weights={"w": torch.zeros(2)}, optimizer=state,
                           trainer_state={"step": 1})


def test_an_optimizer_state_with_arbitrary_objects_is_refused(tmp_path: Path) -> None:
    target = _checkpoint_with_optimizer_state(tmp_path / "step-00000001", {"state": _Payload()})
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(target)
    assert MARKER == []


def test_no_command_takes_a_secret_on_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from llava_kit.cli import app as app_module

    fresh = typer.Typer()  # not the shared app: registering twice would duplicate commands
    monkeypatch.setattr(app_module, "app", fresh)
    app_module._register_commands()
    names: list[str] = []

    def walk(command: object) -> None:
        names.extend(getattr(p, "name", "") for p in getattr(command, "params", []))
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(typer.main.get_command(fresh))
    secrets = [n for n in names if n in {"api_key", "key", "token", "secret", "password"}]
    assert secrets == [], "API keys must come from environment variables (e.g. --key-env NAME)"


ALLOWLIST_DIFF = """
import json
import torch
from llava_kit.train.distributed import select_deepspeed_accelerator

select_deepspeed_accelerator()
import deepspeed  # noqa: F401 - whatever DeepSpeed or torch allow on their own counts as before
before = set(torch.serialization.get_safe_globals())
import llava_kit.train.deepspeed_backend  # registers llava-kit's additions
added = set(torch.serialization.get_safe_globals()) - before
print(json.dumps(sorted(f"{c.__module__}.{c.__qualname__}" for c in added)))
"""


def test_deepspeed_backend_adds_exactly_its_plain_data_classes_to_the_allowlist() -> None:
    # A fresh interpreter: in this one another test may have imported the backend already.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", ALLOWLIST_DIFF], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [
        "deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler",
        "deepspeed.runtime.fp16.loss_scaler.LossScaler",
        "deepspeed.runtime.zero.config.ZeroStageEnum",
        "deepspeed.utils.tensor_fragment.fragment_address",
    ]


def test_an_optimizer_state_with_a_deepspeed_class_outside_the_allowlist_is_refused(
    tmp_path: Path,
) -> None:
    from deepspeed.runtime.zero.config import DeepSpeedZeroConfig

    from llava_kit.train.deepspeed_backend import OPTIMIZER_STATE_CLASSES

    allowed = _checkpoint_with_optimizer_state(
        tmp_path / "step-00000001", {"stage": OPTIMIZER_STATE_CLASSES[2](2)}
    )
    assert load_checkpoint(allowed).optimizer == {"stage": 2}
    refused = _checkpoint_with_optimizer_state(
        tmp_path / "step-00000002", {"config": DeepSpeedZeroConfig()}
    )
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(refused)
