"""``llava-kit serve``: a trained run's model behind an OpenAI-compatible chat-completions API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from llava_kit.errors import LlavaKitError


def serve(
    run_dir: Path = typer.Argument(..., help="Run directory written by `llava-kit run`, or a llava-kit export.", show_default=False),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535),
    model_name: Optional[str] = typer.Option(None, "--model-name", help="The name clients send as `model` (default: the recipe's name)."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="Name of an environment variable holding the API key clients must send."),
    image_dir: Optional[Path] = typer.Option(None, "--image-dir", help="Allow image_url parts naming files inside this folder."),
    allow_remote_images: bool = typer.Option(False, "--allow-remote-images", help="Fetch http(s) image URLs."),
    max_batch: int = typer.Option(16, "--max-batch", min=1, help="Requests generated together."),
    batch_wait_ms: float = typer.Option(5.0, "--batch-wait-ms", min=0.0, help="How long a batch waits for more requests."),
    max_queue: int = typer.Option(64, "--max-queue", min=1, help="Waiting requests; more are answered 429."),
    max_tokens: int = typer.Option(1024, "--max-tokens", min=1, help="Most new tokens a request may ask for."),
    max_images: int = typer.Option(8, "--max-images", min=1, help="Most images in one request."),
    max_image_pixels: int = typer.Option(4096 * 4096, "--max-image-pixels", min=1),
    max_image_mb: float = typer.Option(10.0, "--max-image-mb", min=0.001, help="Largest image file."),
    max_body_mb: float = typer.Option(16.0, "--max-body-mb", min=0.001, help="Largest request body."),
) -> None:
    """Serve a finished run's model: POST /v1/chat/completions (text and images, streaming), GET /v1/models, GET /health."""
    from llava_kit.loading import open_model
    from llava_kit.serve.app import create_app
    from llava_kit.serve.images import ImagePolicy
    from llava_kit.serve.limits import MIB, ServeLimits
    from llava_kit.serve.server import bind, run_server
    from llava_kit.serve.service import ModelService

    api_key = _api_key(api_key_env)
    if image_dir is not None and not image_dir.is_dir():
        raise LlavaKitError(f"--image-dir {image_dir} is not a folder",
                            hint="name an existing folder whose images clients may use")
    limits = ServeLimits(
        max_body_bytes=int(max_body_mb * MIB), max_image_bytes=int(max_image_mb * MIB),
        max_image_pixels=max_image_pixels, max_images=max_images, max_tokens=max_tokens,
        max_queue=max_queue,
        max_batch=max_batch, batch_wait_ms=batch_wait_ms,
    )
    sock = bind(host, port)  # before loading: a port in use fails in a second, not a minute
    opened = open_model(run_dir)
    options: dict[str, object] = {"limits": limits,
                                  "images": ImagePolicy(image_dir, allow_remote_images)}
    if model_name:
        options["name"] = model_name
    service = ModelService.from_opened(opened, **options)
    bound_port = sock.getsockname()[1]
    console = Console()
    console.print(f"serving [bold]{service.name}[/bold] at http://{host}:{bound_port}/v1 "
                  f"(model device {service.model.device}; Ctrl-C stops)", highlight=False)
    if api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
        console.print("[yellow]note:[/yellow] no --api-key-env: anyone who reaches this "
                      "address can use the model", highlight=False)
    run_server(create_app(service, api_key=api_key), sock, on_exit=service.close)


def _api_key(variable: str | None) -> str | None:
    if variable is None:
        return None
    key = os.environ.get(variable)
    if not key:
        raise LlavaKitError(f"--api-key-env {variable}: the environment variable is not set",
                            hint=f"export {variable}=<the key clients will send>, or name another")
    return key


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
