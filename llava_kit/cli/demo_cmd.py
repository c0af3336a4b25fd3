"""``llava-kit demo``: a web chat with a trained run's model, like the paper's visual chat demo."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from llava_kit.errors import LlavaKitError


def demo(
    run_dir: Path = typer.Argument(..., help="Run directory written by `llava-kit run`, or a llava-kit export.", show_default=False),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(7860, "--port", min=1, max=65535),
    max_tokens: int = typer.Option(512, "--max-tokens", min=1, help="Most new tokens per answer (the slider's end)."),
) -> None:
    """Open a web chat with the model of a finished run: upload an image, ask, watch the answer stream."""
    try:
        from llava_kit.serve import web_chat
    except ImportError as exc:
        raise LlavaKitError(
            f"the web demo needs Gradio, which is not installed ({exc})",
            hint="pip install 'llava-kit[demo]'",
        ) from None
    from llava_kit.loading import open_model
    from llava_kit.serve.limits import ServeLimits
    from llava_kit.serve.server import bind
    from llava_kit.serve.service import ModelService

    bind(host, port).close()  # a port in use fails now, with the usual message
    limits = ServeLimits(max_tokens=max_tokens)
    service = ModelService.from_opened(open_model(run_dir), limits=limits)
    Console().print(f"web chat with [bold]{service.name}[/bold] at http://{host}:{port} "
                    "(Ctrl-C stops)", highlight=False)
    service.start()
    try:
        web_chat.launch(web_chat.build_demo(service), service, host, port)
    finally:
        service.stop()


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
