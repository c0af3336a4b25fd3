"""One tiny trained run for every serving test, and a server per test module."""

from __future__ import annotations

import base64
import importlib.util
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from llava_kit.demo.synth_scienceqa import synth_scienceqa


def _chat_conftest():
    path = Path(__file__).parents[1] / "chat" / "conftest.py"
    spec = importlib.util.spec_from_file_location("llava_kit_tests_chat_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def serve_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serve_synth") / "scienceqa"
    synth_scienceqa(out, n=40, seed=0)
    return out


@pytest.fixture(scope="session")
def serve_run(tmp_path_factory: pytest.TempPathFactory, serve_data: Path) -> Path:
    """The chat tests' tiny run, with room in its context for the long prompts of data
    generation (positions only: the trained weights are the same size)."""
    def long_context(raw: dict) -> None:
        raw["model"]["llm"]["config"]["max_position_embeddings"] = 4096

    return _chat_conftest()._make_run(tmp_path_factory.mktemp("serve_run"), serve_data, long_context)


@pytest.fixture(scope="session")
def opened(serve_run: Path):
    from llava_kit.loading import open_model

    return open_model(serve_run)


@pytest.fixture(scope="session")
def images(serve_data: Path) -> list[Path]:
    return sorted(serve_data.glob("*/*/image.png"))[:12]


def _data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


@pytest.fixture(scope="session")
def data_url():
    """``data_url(path)``: a PNG file as an image_url data URL."""
    return _data_url


@pytest.fixture(scope="session")
def running_server():
    """``with running_server(opened, api_key=..., **limits) as server:``."""
    return _running_server


@contextmanager
def _running_server(opened, *, api_key: str | None = None, **limits) -> Iterator:
    """A ModelService on the shared model behind a real uvicorn server on 127.0.0.1."""
    from llava_kit.serve.app import create_app
    from llava_kit.serve.limits import ServeLimits
    from llava_kit.serve.server import BackgroundServer
    from llava_kit.serve.service import ModelService

    service = ModelService.from_opened(opened, limits=ServeLimits(**limits))
    with BackgroundServer(create_app(service, api_key=api_key), on_exit=service.close) as server:
        yield server
