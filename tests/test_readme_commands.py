"""CI runs exactly the newcomer's two commands from the README, with the lock file."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    start_here = (ROOT / "README.md").read_text(encoding="utf-8").split("## Start here", 1)[1]
    start_here = start_here.split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", start_here, re.S)]


def test_the_readme_has_two_set_up_commands_and_ci_runs_them_verbatim() -> None:
    install, test = _readme_commands()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert ci_lines[-2:] == [install, test]


def test_the_install_command_applies_the_lock_file_that_pins_the_core_dependencies() -> None:
    install, _ = _readme_commands()
    assert "-c constraints.txt" in install.split("&&")[0]
    pins = dict(
        line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for package in ("torch", "transformers", "deepspeed", "pluggy", "pydantic", "open_clip_torch",
                    "einops", "typer", "peft", "pytest", "pytest-xdist"):
        assert package in pins or package.replace("_", "-") in pins, package
