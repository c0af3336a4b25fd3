"""The hook implementations llava-kit calls (this module is the entry point's target)."""

from __future__ import annotations

from llava_kit.plugins import hookimpl
from llava_kit.plugins.hookspecs import Register

# Components are imported inside the hooks so that an import failure is reported by
# `llava-kit plugins` instead of breaking every other component.


@hookimpl
def register_connectors(register: Register) -> None:
    from llava_kit_connector_example.avgpool import AvgPoolMLPConnector

    register("avgpool2x2_mlp", AvgPoolMLPConnector)


@hookimpl
def register_data_formats(register: Register) -> None:
    from llava_kit_connector_example.qa_jsonl import QAJsonlFormat

    register("qa_jsonl", QAJsonlFormat)


@hookimpl
def register_trackers(register: Register) -> None:
    from llava_kit_connector_example.csv_tracker import CsvTracker

    register("csv_metrics", CsvTracker)
