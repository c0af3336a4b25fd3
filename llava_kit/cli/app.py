"""The ``llava-kit`` entry point: sub-commands, and user errors shown without tracebacks."""

from __future__ import annotations

import os
import sys

import typer
from llava_kit.cli.boundary import DEBUG_ENV, as_user_error, debugging, err_console, report_error
from llava_kit.errors import LlavaKitError

app = typer.Typer(
    name="llava-kit",
    help="Assemble, train and evaluate LLaVA-style vision-language models from plugins.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register_commands() -> None:
    from llava_kit.cli import (
        chat_cmd, data_cmd, demo_cmd, eval_cmd, export_cmd, grid_cmd, plan_cmd, plugins_cmd,
        run_cmd, serve_cmd, validate_cmd,
    )

    for module in (run_cmd, validate_cmd, data_cmd, plugins_cmd, grid_cmd, plan_cmd, eval_cmd,
                   chat_cmd, export_cmd, serve_cmd, demo_cmd):
        module.register(app)


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-screen errors."),
) -> None:
    """Assemble, train and evaluate LLaVA-style vision-language models from plugins."""
    if debug:
        os.environ[DEBUG_ENV] = "1"  # launched processes inherit it


def main() -> None:
    _register_commands()
    try:
        # Outside standalone mode click returns, rather than raises, a command's exit code.
        code = app(standalone_mode=False)
    except LlavaKitError as exc:
        report_error(exc)
        sys.exit(2)
    except (OSError, MemoryError) as exc:
        error = as_user_error(exc)
        if error is None or debugging():
            raise
        report_error(error)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("[red]aborted[/red]")
        sys.exit(130)
    except _usage_errors() as exc:
        exc.show()
        sys.exit(exc.exit_code)
    leave_process_group()
    if isinstance(code, int):
        sys.exit(code)


def leave_process_group() -> None:
    """After a command that succeeded, destroy the process group it joined, if any."""
    if "torch" in sys.modules:  # a command that never imported torch has no group
        from llava_kit.train.distributed import shutdown_distributed

        shutdown_distributed()


def _usage_errors() -> type[Exception]:
    """Click's usage-error base class, wherever this typer version keeps click."""
    try:
        from typer._click.exceptions import ClickException  # typer >= 0.29 vendors click
    except ImportError:
        from click.exceptions import ClickException
    return ClickException
