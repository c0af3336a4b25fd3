"""``tensorboard``: event files in the run directory's tensorboard/ folder.

``tensorboard --logdir runs/<recipe>`` shows each run; for a grid, ``--logdir
<grid dir>/cells`` shows each cell as its own run, and the HParams tab compares them by
their recipe settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llava_kit.trackers.base import Point, Tracker, TrackerRun
from llava_kit.trackers.values import flat_settings

_TEXT_SUFFIXES = (".md", ".yaml", ".yml", ".json", ".txt")


class TensorBoardTracker(Tracker):
    """TensorBoard event files under the run directory (tensorboard/)."""

    requires = ("tensorboard",)
    install = 'pip install "llava-kit[tensorboard]"'

    def start(self, run: TrackerRun) -> bool:
        from torch.utils.tensorboard import SummaryWriter

        folder = run.layout.tensorboard
        # A folder holding events is this run's: a resumed run adds a file beside them.
        continued = folder.is_dir() and any(folder.glob("events.out.tfevents.*"))
        self._writer = SummaryWriter(str(folder), flush_secs=10)
        self._config = run.config
        if not continued:
            text = yaml.safe_dump(run.config, sort_keys=False)
            self._writer.add_text("recipe", _code_block(text), 0)
        return continued

    def log(self, point: Point) -> None:
        for name, value in point.values.items():
            self._writer.add_scalar(name, value, point.step)

    def summary(self, values: dict[str, float], step: int) -> None:
        # The values as scalars at the last step, and the HParams tab: every recipe setting
        # beside them, one row per run ("." keeps them in this run's folder).
        settings: dict[str, Any] = flat_settings(self._config)
        self._writer.add_hparams(settings, values, run_name=".", global_step=step)

    def artifact(self, path: Path) -> None:
        if path.suffix == ".png":
            import numpy
            from PIL import Image

            with Image.open(path) as image:
                pixels = numpy.asarray(image.convert("RGB"))
            self._writer.add_image(path.stem, pixels, 0, dataformats="HWC")
        elif path.suffix in _TEXT_SUFFIXES:
            text = path.read_text(encoding="utf-8")
            self._writer.add_text(path.name, text if path.suffix == ".md" else _code_block(text), 0)

    def finish(self, ok: bool) -> None:
        self._writer.close()


def _code_block(text: str) -> str:
    return "```\n" + text + "\n```"
