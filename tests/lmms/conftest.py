"""Tiny trained runs (the chat tests' recipe) and llava-kit's local lmms-eval tasks, offline."""

from __future__ import annotations

import os

# lmms-eval's tasks read local copies only; set before datasets / huggingface_hub load.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402

import pytest  # noqa: E402

from llava_kit.demo.synth_scienceqa import synth_scienceqa  # noqa: E402

pytest.importorskip("lmms_eval", reason='needs the lmms extra: pip install "llava-kit[lmms]"')


def chat_conftest() -> ModuleType:
    """tests/chat/conftest.py as a module, for its run-training helper (tests are not a
    package)."""
    path = Path(__file__).parents[1] / "chat" / "conftest.py"
    spec = importlib.util.spec_from_file_location("llava_kit_tests_chat_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def lmms_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lmms_synth") / "scienceqa"
    synth_scienceqa(out, n=40, seed=0)
    return out


@pytest.fixture(scope="session")
def lmms_run(tmp_path_factory: pytest.TempPathFactory, lmms_data: Path) -> Path:
    """The chat tests' tiny two-stage run (8 samples a stage)."""
    return chat_conftest()._make_run(tmp_path_factory.mktemp("lmms_run"), lmms_data)


@pytest.fixture(scope="session")
def local_tasks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from llava_kit.lmms.local_tasks import ensure_local_tasks

    return ensure_local_tasks(tmp_path_factory.mktemp("lmms_tasks") / "local")
