"""A grid's resources section: what each cell runs on, checked before anything runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from llava_kit.cli.app import main
from llava_kit.errors import LlavaKitError, RecipeError
from llava_kit.grid import GridExecutor, load_grid, plan_grid
from llava_kit.grid.resources import Resources, check_multi_process, parse_resources


def test_resources_default_to_one_process() -> None:
    assert parse_resources(None, "g.yaml") == Resources(1, 1, 1)
    parsed = parse_resources({"nproc_per_node": 8, "nodes": 2, "gpus_per_process": 1}, "g.yaml")
    assert (parsed.processes, parsed.gpus_per_node) == (16, 8)
    assert Resources().with_nproc(4) == Resources(nproc_per_node=4)
    assert Resources(nproc_per_node=4).with_nproc(None) == Resources(nproc_per_node=4)


@pytest.mark.parametrize(("value", "message"), [
    ([2], "resources: must be a mapping of nproc_per_node, nodes, gpus_per_process, got [2]"),
    ({"gpus": 8}, "resources: unknown key(s) 'gpus'; resources has nproc_per_node"),
    ({"nproc_per_node": 0}, "resources.nproc_per_node: must be a whole number of at least 1"),
    ({"nodes": "two"}, "resources.nodes: must be a whole number of at least 1"),
    ({"nproc_per_node": True}, "resources.nproc_per_node: must be a whole number"),
    ({"gpus_per_process": 2}, "each training process uses one GPU"),
])
def test_bad_resources_are_named(value: object, message: str) -> None:
    with pytest.raises(RecipeError) as raised:
        parse_resources(value, "g.yaml")
    assert raised.value.message.startswith("g.yaml: ")
    assert message in raised.value.message


def test_several_processes_without_deepspeed_are_refused() -> None:
    check_multi_process(Resources(), [("baseline", "none")])
    check_multi_process(Resources(nproc_per_node=2), [("baseline", "zero2")])
    with pytest.raises(RecipeError, match="cell.s. lr2 run 2 processes but runtime.deepspeed is none"):
        check_multi_process(Resources(nproc_per_node=2), [("baseline", "zero2"), ("lr2", "none")])


def test_the_grid_file_carries_resources(write_grid: Callable[..., Path]) -> None:
    grid = load_grid(write_grid(variants={"a": {"runtime.seed": 2}},
                                resources={"nproc_per_node": 2, "gpus_per_process": 0}))
    assert grid.resources == Resources(nproc_per_node=2, gpus_per_process=0)


def test_a_multi_process_cell_is_started_by_torchrun(
    write_grid: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grid_file = write_grid(variants={"a": {"runtime.seed": 2}})
    grid = load_grid(grid_file)
    started: list[list[str]] = []

    class Finished:
        returncode = 3

        def __init__(self, command: list[str], **kwargs: object) -> None:
            started.append(command)

        def poll(self) -> int:
            return self.returncode

    monkeypatch.setattr(subprocess, "Popen", Finished)
    executor = GridExecutor(grid_file, tmp_path / "out", resources=Resources(nproc_per_node=4))
    records = executor.run(plan_grid(grid, tmp_path / "out", grid.select(["a"])))
    assert started == [[sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "4",
                        "--standalone", "-m", "llava_kit.grid.worker", str(grid_file),
                        str(tmp_path / "out"), "a"]]
    assert records[0]["status"] == "failed"
    assert records[0]["error"].startswith("worker exited with code 3")


def test_cells_of_several_nodes_do_not_run_locally(tmp_path: Path) -> None:
    with pytest.raises(LlavaKitError, match="resources.nodes is 2; cells run locally on this "
                                            "one node"):
        GridExecutor(tmp_path / "g.yaml", tmp_path, resources=Resources(nodes=2))


def test_grid_cli_refuses_nproc_without_deepspeed_in_one_screen(
    write_grid: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    grid_file = write_grid(variants={"a": {"runtime.seed": 2}})
    monkeypatch.setattr(sys, "argv", ["llava-kit", "grid", str(grid_file), "--dry-run",
                                      "--nproc", "2", "--output-dir", str(tmp_path / "g")])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code not in (0, None)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "cell(s) baseline, a run 2 processes but runtime.deepspeed is none" in text
    assert "Traceback" not in text


def test_grid_dry_run_shows_each_cells_resources(
    write_grid: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    grid_file = write_grid(variants={"a": {"runtime.seed": 2}},
                           common={"runtime.deepspeed": "zero2"}, resources={"nproc_per_node": 2})
    monkeypatch.setattr(sys, "argv", ["llava-kit", "grid", str(grid_file), "--dry-run",
                                      "--nproc", "4", "--output-dir", str(tmp_path / "g")])
    try:
        main()
    except SystemExit as exit_:
        assert exit_.code in (0, None)
    assert "each cell: 4 process(es) per node x 1 node(s) (1 GPU each)" in capsys.readouterr().out
