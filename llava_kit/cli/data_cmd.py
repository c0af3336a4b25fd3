"""``llava-kit data``: convert ScienceQA to LLaVA JSON, generate the synthetic demo ScienceQA."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

data_app = typer.Typer(
    name="data",
    help="Prepare datasets: ScienceQA conversion and the synthetic demo ScienceQA.",
    no_args_is_help=True,
)


@data_app.command("convert-scienceqa")
def convert_scienceqa(
    root: Path = typer.Option(..., "--root", help="Folder with problems.json and pid_splits.json."),
    split: str = typer.Option("train", "--split", help="A key of pid_splits.json."),
    prompt_format: str = typer.Option(
        "QCM-LEA", "--format", help="Prompt format INPUT-OUTPUT, e.g. QCM-LEA, CQM-A, QCM-LEPA."
    ),
    out: Path = typer.Option(..., "--out", help="The LLaVA JSON file to write."),
    use_caption: bool = typer.Option(
        False, "--use-caption", help="Append captions.json's caption to the context."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
) -> None:
    """Write a ScienceQA split as LLaVA conversation JSON (like the reference converter)."""
    # Imported on use: the data modules pull in transformers, which slows every other command.
    from llava_kit.data.formats.scienceqa import export_llava_json
    from llava_kit.errors import LlavaKitError

    if out.exists() and not (overwrite and out.is_file()):
        raise LlavaKitError(
            f"--out {out} already exists",
            hint="choose another --out, or pass --overwrite to replace that file",
        )

    count = export_llava_json(root, split, prompt_format, out, use_caption=use_caption)
    Console().print(f"wrote {count} samples (split {split}, format {prompt_format}) to {out}")


@data_app.command("convert")
def convert_command(
    data_format: str = typer.Option(..., "--format", help="The data file's format: captions or llava_json."),
    path: Path = typer.Option(..., "--path", help="The data file (a JSON list, or .jsonl)."),
    image_root: Path = typer.Option(..., "--image-root", help="The folder its image paths are relative to."),
    out: Path = typer.Option(..., "--out", help="A new (or empty) folder for the shards."),
    shard_size: int = typer.Option(1000, "--shard-size", min=1, help="Samples per shard."),
    instruction_seed: int = typer.Option(
        0, "--instruction-seed", help="captions: draws each sample's instruction."
    ),
) -> None:
    """Write captions or LLaVA JSON as webdataset shards (tar files and index.json) to stream."""
    from llava_kit.data.formats.captions import CaptionsFormat, CaptionsOptions
    from llava_kit.data.formats.llava_json import LlavaJSONFormat, LlavaJSONOptions
    from llava_kit.data.streaming.format import needing_webdataset
    from llava_kit.errors import DataError
    from llava_kit.progress_bars import counting_bar

    with needing_webdataset():
        from llava_kit.data.streaming.convert import convert_to_shards

    if data_format == "captions":
        reader = CaptionsFormat(CaptionsOptions(
            path=str(path), image_root=str(image_root), instruction_seed=instruction_seed))
    elif data_format == "llava_json":
        reader = LlavaJSONFormat(LlavaJSONOptions(path=str(path), image_root=str(image_root)))
    else:
        raise DataError(f"--format {data_format!r} cannot be converted",
                        hint="use captions or llava_json")
    with counting_bar("samples", console=Console(stderr=True)) as bar:
        task = bar.add_task(f"writing shards of {path.name}", total=None)
        index = convert_to_shards(reader, out, shard_size,
                                  lambda done, total: bar.update(task, completed=done, total=total))
    Console().print(f"wrote {index.samples} samples in {len(index.shards)} shard(s) to {out}")


@data_app.command("synth-scienceqa")
def synth_scienceqa_command(
    out: Path = typer.Option(..., "--out", help="Folder to write the dataset into."),
    n: int = typer.Option(1500, "--n", min=1, help="Number of problems."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same files."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace a synthetic dataset already in --out."
    ),
) -> None:
    """Generate a small synthetic ScienceQA (images, captions, tokenizer) for the offline demo."""
    from llava_kit.demo.synth_scienceqa import synth_scienceqa

    console = Console()
    with Progress(
        TextColumn("synth-scienceqa"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    ) as progress:
        task = progress.add_task("generating", total=None)
        summary = synth_scienceqa(
            out, n=n, seed=seed, overwrite=overwrite,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    table = Table(title="synthetic ScienceQA")
    table.add_column("what")
    table.add_column("value")
    for what, value in summary.rows():
        table.add_row(what, value)
    console.print(table)


@data_app.command("generate")
def generate_command(
    context: Path = typer.Option(..., "--context", help="Captions-and-boxes file (JSON or JSONL)."),
    data_type: str = typer.Option(
        ..., "--type", help="What to generate: conversation, detail or complex."
    ),
    out: Path = typer.Option(..., "--out", help="The LLaVA JSONL file to append to (resumable)."),
    url: str = typer.Option(..., "--url", help="OpenAI-compatible base URL, e.g. .../v1."),
    model: str = typer.Option(..., "--model", help="Model name sent to the endpoint."),
    key_env: str | None = typer.Option(
        None, "--key-env", help="NAME of the environment variable holding the API key."
    ),
    concurrency: int = typer.Option(4, "--concurrency", min=1, help="Requests in flight."),
    max_retries: int = typer.Option(5, "--max-retries", min=0),
    timeout: float = typer.Option(120.0, "--timeout", min=0.001, help="Seconds per request."),
    temperature: float = typer.Option(0.7, "--temperature", min=0.0),
    max_tokens: int = typer.Option(1024, "--max-tokens", min=1),
    seed: int = typer.Option(0, "--seed", help="Chooses each detail sample's instruction."),
) -> None:
    """Generate instruction data from image contexts through a chat endpoint (paper sec. 3)."""
    from llava_kit.datagen.contexts import read_contexts
    from llava_kit.datagen.generate import cache_path, generate_data, rejects_path
    from llava_kit.datagen.prompts import DATA_TYPES
    from llava_kit.endpoints import ChatClient, EndpointConfig, EndpointError, RequestCache
    from llava_kit.errors import DataError

    if data_type not in DATA_TYPES:
        raise DataError(
            f"--type {data_type!r} is not a data type", hint=f"use one of {', '.join(DATA_TYPES)}"
        )
    contexts = read_contexts(context)
    config = EndpointConfig(
        url=url, model=model, key_env=key_env, concurrency=concurrency,
        max_retries=max_retries, timeout_s=timeout,
    )
    client = ChatClient(config, cache=RequestCache(cache_path(out)))
    summary = generate_data(
        contexts, data_type, client, out, seed=seed,  # type: ignore[arg-type]
        params={"temperature": temperature, "max_tokens": max_tokens},
    )
    if summary.failed and summary.failed == summary.total - summary.skipped:
        # Not one reply: the endpoint itself (URL, server, model, key) is what is wrong.
        raise EndpointError(
            f"all {summary.failed} request(s) to {client.endpoint} failed; the first: "
            f"{client.errors[0]}",
            hint="check --url (the base URL, e.g. http://localhost:8000/v1), that the server is "
            "running, --model and --key-env; then run the same command again",
        )
    console = Console()
    table = Table(title=f"generated {data_type} data")
    table.add_column("what")
    table.add_column("count", justify="right")
    for what, value in summary.rows():
        table.add_row(what, value)
    console.print(table)
    console.print(f"records: {out}\nrejected replies: {rejects_path(out)}")
    if summary.failed:
        console.print(
            f"[yellow]{summary.failed} request(s) failed (the first: {escape(client.errors[0])});"
            " run the same command again to retry them (finished ones are not sent again)"
            "[/yellow]"
        )
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


@data_app.command("check")
def check_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML file.", show_default=False),
    overrides: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Override a field: a.b.c=value (repeatable)."
    ),
    fast: bool = typer.Option(
        False, "--fast", help="Skip decoding images (what `llava-kit run` checks before training)."
    ),
) -> None:
    """Check every enabled stage's data and the eval data; list every problem in one report."""
    from llava_kit.datacheck import check_recipe
    from llava_kit.demo.prepare import ensure_demo_data
    from llava_kit.recipes import load_recipe

    loaded = load_recipe(recipe, overrides)
    ensure_demo_data(loaded)
    report = check_recipe(loaded, decode_images=not fast)
    typer.echo(report.render())
    if report.errors:
        raise typer.Exit(1)
