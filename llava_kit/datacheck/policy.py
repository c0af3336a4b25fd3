"""The data check at the start of a run, and the recipe's on_bad_sample policy.

``error``: any bad sample stops the run before its directory is created, with the whole
report; images are not decoded (a corrupt one stops training when it is loaded, naming
the sample). ``skip``: bad training samples are left out (their ids and reasons go to
skipped_samples.jsonl), so every image is decoded first: a sample the loader could not
use would otherwise stop the run anyway. Data that cannot be read at all, evaluation data
(evaluators score every problem) and a stage left with no samples still stop the run.

Of samples sharing an id the first keeps it and the later ones are bad (``duplicate_id``);
``stage_dataset`` drops those by place, so every id it then drops names one sample.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from llava_kit.datacheck.check import check_recipe
from llava_kit.datacheck.report import CheckReport, Problem
from llava_kit.errors import DataError
from llava_kit.train.run_dir import RunDir

if TYPE_CHECKING:
    from llava_kit.recipes.schema import Recipe

log = logging.getLogger("llava_kit")


# Named as the run directory names it, for the log line of a skipping run.
_SKIPPED_LIST = RunDir(Path("<run>")).skipped_samples


def preflight(recipe: "Recipe") -> CheckReport:
    """The data check the policy needs; raises DataError when the policy says stop."""
    skip = recipe.runtime.on_bad_sample == "skip"
    # A streamed stage's records are read as it trains, not before: its index is checked.
    report = check_recipe(recipe, decode_images=skip, read_streams=False)
    fatal = _fatal(report, recipe) if skip else report.errors
    if fatal:
        raise DataError(report.render(), hint=_hint(fatal, skip))
    for line in _warnings(report):
        log.warning("%s", line)
    return report


def skipped_ids(report: CheckReport, recipe: "Recipe") -> dict[str, frozenset[str]]:
    """Stage name -> ids of the loaded samples that keep their id and the skip policy leaves
    out; records their reader drops and later duplicates are left out before ids count."""
    return {name: frozenset(report.ids_to_drop(f"stages.{name}")) for name in recipe.enabled_stages}


def _fatal(report: CheckReport, recipe: "Recipe") -> list[Problem]:
    fatal = report.unskippable() + [p for p in report.errors if p.where.startswith("eval.")]
    for name in recipe.enabled_stages:
        where = f"stages.{name}"
        if report.samples[where] and report.bad_samples(where) >= report.samples[where]:
            fatal.append(Problem("unusable_data", where, where, None,
                                 "every sample is bad; nothing would be left to train on"))
            report.problems.append(fatal[-1])  # so the rendered report shows it too
    return fatal


def _hint(fatal: list[Problem], skip: bool) -> str:
    if all(problem.sample_id is None for problem in fatal):
        return "fix the data sets named above; no policy can skip a data set that cannot be read"
    if skip:
        return "fix or remove the samples listed"
    return (
        "fix or remove the samples listed (`llava-kit data check RECIPE` also decodes images), "
        "or set runtime.on_bad_sample: skip to leave them out"
    )


def _warnings(report: CheckReport) -> list[str]:
    lines = []
    warnings = [p for p in report.problems if not p.is_error]
    if warnings:
        lines.append(f"data check: {len(warnings)} warning(s), e.g. {warnings[0].line()}")
    for where in report.samples:
        bad = report.bad_samples(where)
        if bad:
            lines.append(
                f"data check: skipping {bad} bad sample(s) of {report.samples[where]} in "
                f"{where} (runtime.on_bad_sample: skip); see {_SKIPPED_LIST}"
            )
    return lines
