"""``mlflow``: an MLflow run per llava-kit run, in the recipe's experiment; a grid's cells
go to the grid's experiment, tagged with its name, so the experiment's compare view shows
the ablation.

The tracking server comes from ``tracking_uri`` or ``MLFLOW_TRACKING_URI``; credentials
only from MLflow's environment variables (``MLFLOW_TRACKING_TOKEN``,
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from llava_kit.components import Options
from llava_kit.trackers.base import Point, Tracker, TrackerRun
from llava_kit.trackers.values import flat_settings

GRID_TAG = "llava_kit.grid"
# MLflow's limits: parameters per batch call, characters of a parameter's value.
_PARAMS_PER_BATCH = 100
_PARAM_CHARS = 6000


class MlflowOptions(Options):
    """Options of ``mlflow``."""

    tracking_uri: str | None = Field(
        None, description="tracking server or store (default: MLFLOW_TRACKING_URI)")
    experiment: str | None = Field(
        None, description="experiment (default: the grid's name for a grid cell, else the "
        "recipe's name)")

    @field_validator("tracking_uri")
    @classmethod
    def _no_credentials(cls, uri: str | None) -> str | None:
        # The recipe is copied into every run directory: a password there would spread.
        if uri and (urlsplit(uri).username or urlsplit(uri).password):
            raise ValueError(
                "holds credentials; give the bare address and set MLFLOW_TRACKING_USERNAME / "
                "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) in the environment")
        return uri


class MlflowTracker(Tracker):
    """MLflow: one run per llava-kit run; a grid's cells in the grid's experiment."""

    Options: ClassVar[type[Options]] = MlflowOptions
    requires = ("mlflow",)
    install = 'pip install "llava-kit[mlflow]"'

    def start(self, run: TrackerRun) -> bool:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        options: MlflowOptions = self.options  # type: ignore[assignment]
        self._client = client = MlflowClient(tracking_uri=options.tracking_uri)
        stored = run.state.get("run_id")
        if stored:
            try:
                client.update_run(stored, status="RUNNING")  # the resumed run continues it
                self._run_id = stored
                return True
            except MlflowException:
                pass  # gone from this store: a new run
        experiment = options.experiment or run.group or run.name
        tags = {GRID_TAG: run.group} if run.group else {}
        created = client.create_run(self._experiment_id(experiment), run_name=run.name, tags=tags)
        self._run_id = run.state["run_id"] = created.info.run_id
        self._log_params(flat_settings(run.config))
        return False

    def log(self, point: Point) -> None:
        from mlflow.entities import Metric

        seconds = point.record.get("time")
        stamp = int(1000 * (seconds if isinstance(seconds, (int, float)) else time.time()))
        metrics = [Metric(name, value, stamp, point.step) for name, value in point.values.items()]
        self._client.log_batch(self._run_id, metrics=metrics)

    def summary(self, values: dict[str, float], step: int) -> None:
        self.log(Point(step, values, {}))

    def artifact(self, path: Path) -> None:
        self._client.log_artifact(self._run_id, str(path))

    def finish(self, ok: bool) -> None:
        self._client.set_terminated(self._run_id, status="FINISHED" if ok else "FAILED")

    def _experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = self._client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self._client.create_experiment(name)
        except MlflowException:  # created meanwhile by another cell of the grid
            found = self._client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def _log_params(self, settings: dict[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(key, str(value)[:_PARAM_CHARS]) for key, value in settings.items()]
        for start in range(0, len(params), _PARAMS_PER_BATCH):
            self._client.log_batch(self._run_id, params=params[start:start + _PARAMS_PER_BATCH])
