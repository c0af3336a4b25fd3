"""Generating a recipe's synthetic demo data on first use, before the model is built.

The demo recipes point their tokenizer and datasets into one folder; a recipe that names
it under ``runtime.demo_data`` gets it synthesised there when it is missing, so the
newcomer's first command needs no download and no separate step.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from llava_kit.errors import DataError

if TYPE_CHECKING:
    from llava_kit.recipes.schema import Recipe

log = logging.getLogger("llava_kit")


def ensure_demo_data(recipe: "Recipe") -> Path | None:
    spec = recipe.runtime.demo_data
    if spec is None:
        return None
    from llava_kit.demo.synth_scienceqa import TOKENIZER_DIR, is_generated, synth_scienceqa

    out = Path(spec.out)
    if (out / "problems.json").is_file() and (out / TOKENIZER_DIR).is_dir():
        return out  # read as it is, whoever wrote it; never written to
    log.info("generating the synthetic ScienceQA demo data in %s", out)
    # overwrite: a folder that this generator left half-written is redone; synth_scienceqa
    # refuses any other non-empty folder, naming it.
    try:
        synth_scienceqa(out, n=spec.n, seed=spec.seed, overwrite=is_generated(out))
    except DataError as exc:
        raise DataError(f"runtime.demo_data.out: {exc.message}", hint=exc.hint) from None
    return out
