"""``csv_metrics``: a tracker that writes every metric point as a CSV row, the smallest
complete example of the tracker contract."""

from __future__ import annotations

import csv
from typing import ClassVar

from pydantic import Field

from llava_kit.components import Options
from llava_kit.trackers import Point, Tracker, TrackerRun


class CsvOptions(Options):
    """Options of ``csv_metrics``."""

    file: str = Field("metrics.csv", pattern=r"^[\w.-]+\.csv$",
                      description="file name inside the run directory")


class CsvTracker(Tracker):
    """Every metric point as a row (step, metric, value) of a CSV file in the run directory."""

    Options: ClassVar[type[Options]] = CsvOptions

    def start(self, run: TrackerRun) -> bool:
        self.path = run.layout.root / self.options.file
        continued = self.path.is_file()  # a resumed run appends to its file
        if not continued:
            self.path.write_text("step,metric,value\n", encoding="utf-8")
        return continued

    def log(self, point: Point) -> None:
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(
                (point.step, name, value) for name, value in point.values.items())
