"""The data-format contract: a reader that turns files on disk into Samples."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from llava_kit.components import Options
from llava_kit.data.formats.fields import UnknownField
from llava_kit.data.sample import Sample


class DataFormat(ABC):
    """Reads one dataset layout; options (paths, splits, prompt format) come from the recipe.

    ``load`` reports bad records through ``llava_kit.data.formats.problems.Problems`` (or
    ``collect_problem``), each with its kind, so that `llava-kit data check` and the skip
    policy can drop and list them instead of stopping at the first.
    """

    Options: ClassVar[type[Options]]

    def __init__(self, options: Options) -> None:
        self.options = options

    @abstractmethod
    def load(self) -> list[Sample]:
        """Every sample, with image paths resolved inside the image root."""

    def unknown_fields(self) -> list[UnknownField]:
        """Record keys this format ignores, for the data check's warnings.

        Called after a successful ``load``; problems of the records themselves belong to
        ``load``. A format that reads every key, or cannot tell, reports none.
        """
        return []

    def source_files(self) -> list[Path] | None:
        """Every file ``load`` reads records from (not images), for keying the token store.

        The store tokenizes a stage's data once and reuses it while these files' contents,
        this format's options, the template and the tokenizer stay the same. None (the
        default) means the format cannot name them: its data is tokenized on every load.
        """
        return None
