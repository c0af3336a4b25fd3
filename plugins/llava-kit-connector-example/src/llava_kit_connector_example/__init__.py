"""An example llava-kit plugin: the ``avgpool2x2_mlp`` token connector and the ``qa_jsonl``
data format."""

from llava_kit_connector_example.avgpool import AvgPoolMLPConnector, AvgPoolMLPOptions
from llava_kit_connector_example.qa_jsonl import QAJsonlFormat, QAJsonlOptions

__all__ = ["AvgPoolMLPConnector", "AvgPoolMLPOptions", "QAJsonlFormat", "QAJsonlOptions"]
