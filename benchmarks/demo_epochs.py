"""Jobs on the demo recipe (``recipes/demo/scienceqa_tiny.yaml``) for interleaved rounds.

Each round trains one stage for one epoch through the real stage runner, from a freshly
built model with the recipe's seed (every round does the same work), or makes one pass
of data loading. Rounds count CPU seconds (``interleave.cpu_seconds``). The demo data is generated once into a folder the caller owns.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import yaml  # noqa: E402

from interleave import cpu_seconds  # noqa: E402
from llava_kit.train.hooks import StageHook, StageLoop, StepEnd  # noqa: E402
from worker import Job  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEMO_RECIPE = ROOT / "recipes" / "demo" / "scienceqa_tiny.yaml"
DEMO_FOLDER = "demo_data/scienceqa"  # where the recipe keeps its data; replaced by ours

Changes = dict[str, Any]


def demo_data(root: Path) -> Path:
    """The demo recipe's synthetic ScienceQA (its own size and seed) under ``root``."""
    from llava_kit.demo.synth_scienceqa import synth_scienceqa

    out = root / "scienceqa"
    if not (out / "problems.json").is_file():
        spec = yaml.safe_load(DEMO_RECIPE.read_text())["runtime"]["demo_data"]
        synth_scienceqa(out, n=spec["n"], seed=spec["seed"])
    return out


def demo_recipe(data: str, stage: str, stage_changes: Changes | None = None,
                runtime: Changes | None = None, model: Changes | None = None) -> Any:
    """The demo recipe reading ``data``, with only ``stage`` enabled for one epoch on CPU.

    ``model`` changes merge one level deep (``{"encoder": {"config": {...}}}`` replaces
    the encoder's config only).
    """
    from llava_kit.recipes import validate_recipe

    raw = yaml.safe_load(DEMO_RECIPE.read_text().replace(DEMO_FOLDER, data))
    for name in raw["stages"]:
        raw["stages"][name]["enabled"] = name == stage
    changes = dict(stage_changes or {})
    raw["stages"][stage]["data"].update(changes.pop("data", {}))
    raw["stages"][stage].update(epochs=1, **changes)
    for part, value in (model or {}).items():
        if isinstance(value, dict) and isinstance(raw["model"].get(part), dict):
            raw["model"][part].update(value)
        else:
            raw["model"][part] = value
    raw["runtime"].update(device="cpu", demo_data=None, **(runtime or {}))
    raw.pop("eval", None)
    return validate_recipe(raw)


def run_context(recipe: Any, run_dir: Path) -> Any:
    """A single-process CPU run context writing into ``run_dir``."""
    from llava_kit.train.context import RunContext
    from llava_kit.train.distributed import DistributedContext
    from llava_kit.train.metrics import MetricsLogger
    from llava_kit.train.run_dir import RunDir

    return RunContext(
        recipe=recipe, run_dir=run_dir, dist=DistributedContext(0, 1, 0, "cpu"),
        device=torch.device("cpu"), precision="fp32",
        metrics=MetricsLogger(RunDir(run_dir).metrics), resume=False,
    )


class LoopClock(StageHook):
    """CPU seconds and samples from the end of a stage's first step to the end of its last:
    the training loop without the set-up before it."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, int]] = []

    def after_step(self, loop: StageLoop, at: StepEnd) -> None:
        if at.step == 1 or at.is_last:
            self.marks.append((cpu_seconds(), at.samples_seen))

    def span(self) -> tuple[float, int]:
        (start, first), (end, last) = self.marks[0], self.marks[-1]
        return end - start, last - first


class EncoderClock:
    """CPU seconds spent in a module's forward passes (the vision encoder's share)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.seconds = 0.0
        self._start = 0.0
        module.register_forward_pre_hook(self._before)
        module.register_forward_hook(self._after)

    def _before(self, module: torch.nn.Module, args: Any) -> None:
        self._start = cpu_seconds()

    def _after(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        self.seconds += cpu_seconds() - self._start


class EpochJob(Job):
    """One epoch of ``stage`` per round; returns the CPU seconds of the training loop after
    its first step (``loop``) or of the whole stage, set-up, cache look-ups and final
    checkpoint included (``stage``).

    Building it runs one epoch untimed (``runs[0]``): a process's first pays one-off costs
    (imports, kernel choices). With ``feature_cache`` the job keeps one cache folder for
    its life, which that first epoch fills, as a grid's first cell would; every round
    reads it.
    """

    def __init__(self, data: str, stage: str, measure: str, stage_changes: Changes | None = None,
                 model: Changes | None = None, feature_cache: bool = False) -> None:
        self.cache = Path(tempfile.mkdtemp(prefix="llava_kit_feature_cache_")) if feature_cache else None
        runtime = {"feature_cache": str(self.cache)} if self.cache else {}
        self.recipe = demo_recipe(data, stage, stage_changes, runtime, model)
        self.stage, self.measure = stage, measure
        self.runs: list[dict[str, Any]] = []
        self.run()

    def run(self) -> float:
        from llava_kit.model.build import build_model
        from llava_kit.train.metrics import read_metrics
        from llava_kit.train.run_dir import RunDir
        from llava_kit.train.runner import StageRunner

        recipe = self.recipe
        with tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(recipe.runtime.seed)
            model = build_model(recipe.model)
            ctx = run_context(recipe, Path(tmp))
            encoder = EncoderClock(model.encoder)
            clock = LoopClock()
            start = cpu_seconds()
            summary = StageRunner(ctx, model, self.stage, recipe.stages[self.stage], None,
                                  hooks=[clock]).run()
            whole = cpu_seconds() - start
            last = [r for r in read_metrics(RunDir(Path(tmp)).metrics) if "loss" in r][-1]
        loop_s, loop_samples = clock.span()
        self.runs.append({"stage_s": whole, "loop_s": loop_s, "loop_samples": loop_samples,
                          "encoder_s": encoder.seconds,
                          "pad": last["epoch_pad_fraction"], "final_loss": summary.final_loss})
        return whole if self.measure == "stage" else loop_s

    def info(self) -> dict[str, Any]:
        return {"runs": self.runs}

    def close(self) -> None:
        if self.cache is not None:
            shutil.rmtree(self.cache, ignore_errors=True)


class LoadingJob(Job):
    """One pass of dataset + collator over a stage's data (images decoded and preprocessed,
    no model step) per round: what the training loop asks of data loading."""

    def __init__(self, data: str, stage: str, micro_size: int) -> None:
        from torch.utils.data import DataLoader

        from llava_kit.data.collate import Collator
        from llava_kit.model.build import build_model
        from llava_kit.train.stage_setup import stage_dataset

        recipe = demo_recipe(data, stage)
        model = build_model(recipe.model)
        with tempfile.TemporaryDirectory() as tmp:
            dataset = stage_dataset(run_context(recipe, Path(tmp)), model, stage, recipe.stages[stage])
        collator = Collator(model.num_visual_tokens, model.tokenizer.pad_token_id,
                            recipe.model.max_length, "right")
        self.loader = DataLoader(dataset, batch_size=micro_size, collate_fn=collator, num_workers=0)
        self.samples = len(dataset)
        self.run()

    def run(self) -> float:
        start = cpu_seconds()
        for _ in self.loader:
            pass
        return cpu_seconds() - start

    def info(self) -> dict[str, Any]:
        return {"samples": self.samples}
