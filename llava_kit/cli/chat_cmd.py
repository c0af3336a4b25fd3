"""``llava-kit chat``: talk to a trained run's model, one question or an interactive session."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from llava_kit.errors import LlavaKitError


def chat(
    run_dir: Path = typer.Argument(..., help="Run directory written by `llava-kit run`, or a llava-kit export.", show_default=False),
    image: Optional[Path] = typer.Option(None, "--image", help="Image for the first question."),
    prompt: Optional[str] = typer.Option(
        None, "--prompt", help="Answer this one question and exit (default: interactive session)."
    ),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1, help="Longest answer, in tokens."),
    temperature: float = typer.Option(
        0.0, "--temperature", min=0.0, help="0 decodes greedily; above 0 samples."
    ),
) -> None:
    """Chat with the model of a finished run, in the template it was last trained with."""
    from llava_kit.chat import ChatSession, run_repl
    from llava_kit.cli.boundary import report_error
    from llava_kit.loading import open_model

    opened = open_model(run_dir)
    recipe = opened.recipe
    session = ChatSession(
        opened.model, opened.template, image_position=recipe.model.image_position,
        max_new_tokens=max_new_tokens, temperature=temperature, seed=recipe.runtime.seed,
    )
    if image is not None:
        try:
            session.attach_image(image)
        except LlavaKitError as exc:
            if prompt is not None:
                raise
            report_error(exc)  # the interactive session goes on without the image
    if prompt is not None:
        session.ask(prompt, on_text=_write)
        _write("\n")
        return
    run_repl(session, sys.stdin.readline, _write, report_error)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
