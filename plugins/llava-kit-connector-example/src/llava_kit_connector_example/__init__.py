"""An example llava-kit plugin: the ``avgpool2x2_mlp`` token connector, the ``qa_jsonl``
data format and the ``csv_metrics`` tracker."""

from llava_kit_connector_example.avgpool import AvgPoolMLPConnector, AvgPoolMLPOptions
from llava_kit_connector_example.csv_tracker import CsvOptions, CsvTracker
from llava_kit_connector_example.qa_jsonl import QAJsonlFormat, QAJsonlOptions

__all__ = [
    "AvgPoolMLPConnector", "AvgPoolMLPOptions", "CsvOptions", "CsvTracker", "QAJsonlFormat",
    "QAJsonlOptions",
]
