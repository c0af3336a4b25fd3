"""`llava-kit serve` and `llava-kit demo` refuse bad settings with one error each, before
loading a model or opening a port."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llava_kit.errors import LlavaKitError


def invoke(args: list[str]):
    from llava_kit.cli import app as cli

    if not any(command.name == "serve" for command in cli.app.registered_commands):
        cli._register_commands()
    return CliRunner().invoke(cli.app, args)


def error_of(args: list[str]) -> str:
    result = invoke(args)
    assert isinstance(result.exception, LlavaKitError), result.output
    return str(result.exception)


def test_serve_refuses_an_unset_key_variable(serve_run: Path, monkeypatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    assert "--api-key-env NO_SUCH_KEY: the environment variable is not set" in error_of(
        ["serve", str(serve_run), "--api-key-env", "NO_SUCH_KEY"])


def test_serve_refuses_a_port_in_use(serve_run: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        message = error_of(["serve", str(serve_run), "--port", str(port)])
    assert f"cannot listen on 127.0.0.1:{port}" in message and "--port" in message


def test_serve_refuses_a_folder_that_is_no_run(tmp_path: Path) -> None:
    assert "neither a run directory" in error_of(["serve", str(tmp_path), "--port", "0"])
    assert "--image-dir" in error_of(["serve", str(tmp_path), "--image-dir", str(tmp_path / "x")])


@pytest.mark.skipif(importlib.util.find_spec("gradio") is not None, reason="Gradio is installed")
def test_demo_without_gradio_says_how_to_install_it(tmp_path: Path) -> None:
    assert "pip install 'llava-kit[demo]'" in error_of(["demo", str(tmp_path)])
