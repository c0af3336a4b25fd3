"""``llava-kit eval lmms`` on a trained run, lmms-eval finding the model through its entry
point, and the errors a user can make, each one screen."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llava_kit.cli.app import _register_commands, app
from llava_kit.errors import LlavaKitError

LOCAL = ["llava_kit_pope", "llava_kit_mme", "llava_kit_textvqa", "llava_kit_pope_mc"]


def eval_lmms(run: Path, local_tasks: Path, *args: str):
    _register_commands()
    return CliRunner().invoke(app, ["eval", "lmms", str(run), "--local-data", str(local_tasks),
                                    *args])


@pytest.fixture()
def run_copy(lmms_run: Path, tmp_path: Path) -> Path:
    """The session's run, copied: this test writes results and report.md into it."""
    return Path(shutil.copytree(lmms_run, tmp_path / "run"))


def test_the_demo_run_is_evaluated_offline_into_its_results_and_report(
    run_copy: Path, local_tasks: Path
) -> None:
    result = eval_lmms(run_copy, local_tasks, "--tasks", ",".join(LOCAL), "--limit", "6")
    assert result.exit_code == 0, result.output
    folder = run_copy / "results" / "lmms_eval" / "lmms"
    results = json.loads((folder / "results.json").read_text())
    assert set(results["results"]) == set(LOCAL)
    assert all(results["n-samples"][task]["effective"] == 6 for task in LOCAL)
    for task in LOCAL:
        lines = (folder / f"samples_{task}.jsonl").read_text().splitlines()
        assert len(lines) == 6 and "resps" in json.loads(lines[0])
    report = (run_copy / "report.md").read_text()
    assert report.startswith("# Run report: tiny")  # the run's own report, kept
    assert "## lmms-eval: lmms" in report
    assert "| model | TextVQA | POPE | MME |" in report
    assert "| LLaVA-1.5 7B | 58.2 | 85.9 | 1510.7 |" in report
    assert "| LLaVA-1.5 13B | 61.3 | 85.9 | 1531.3 |" in report
    assert "| llava_kit_pope_mc | acc |" in report

    # The same name again is refused; --force replaces the section instead of adding one.
    again = eval_lmms(run_copy, local_tasks, "--tasks", "llava_kit_pope", "--limit", "2")
    assert again.exit_code != 0 and "--force" in str(again.exception)
    forced = eval_lmms(run_copy, local_tasks, "--tasks", "llava_kit_pope", "--limit", "2",
                       "--force")
    assert forced.exit_code == 0, forced.output
    report = (run_copy / "report.md").read_text()
    assert report.count("## lmms-eval: lmms") == 1 and "llava_kit_mme" not in report


def test_lmms_eval_finds_the_model_through_its_entry_point(lmms_run: Path) -> None:
    from lmms_eval.models import get_model

    from llava_kit.lmms.run_models import RunChatLMM, RunLMM

    assert get_model("llava_kit") is RunLMM
    assert get_model("llava_kit_chat") is RunChatLMM
    # As lmms-eval's command line builds it from --model_args and --batch_size/--device.
    lm = RunLMM.create_from_arg_string(f"pretrained={lmms_run}",
                                       {"batch_size": "4", "device": "cpu"})
    assert lm.batch_size == 4 and lm.llava_model.device.type == "cpu"
    with pytest.raises(LlavaKitError, match="model_args temperature: not an option"):
        RunLMM.create_from_arg_string(f"pretrained={lmms_run},temperature=0.2")
    with pytest.raises(LlavaKitError, match="batch_size='auto' is not a whole number"):
        RunLMM.create_from_arg_string(f"pretrained={lmms_run}", {"batch_size": "auto"})


@pytest.mark.parametrize(("args", "message"), [
    (["--tasks", "gqa"], "task 'gqa' is not an lmms-eval task here"),
    (["--tasks", "llava_kit_mme", "--limit", "3"], "limit 3 is odd: MME scores each image's"),
    (["--tasks", "llava_kit_pope", "--name", "../up"], "--name '../up' cannot name a folder"),
    (["--tasks", "llava_kit_pope", "--include-path", "/no/such/dir"],
     "include path /no/such/dir is not a folder"),
])
def test_user_errors_are_one_screen(
    lmms_run: Path, local_tasks: Path, args: list[str], message: str
) -> None:
    result = eval_lmms(lmms_run, local_tasks, *args)
    assert result.exit_code != 0
    assert isinstance(result.exception, LlavaKitError), result.output
    assert message in str(result.exception)
