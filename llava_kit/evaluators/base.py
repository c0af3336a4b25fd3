"""The evaluator contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from llava_kit.components import Options
from llava_kit.errors import LlavaKitError
from llava_kit.train.run_dir import RunDir

if TYPE_CHECKING:
    from llava_kit.data.formats.base import DataFormat
    from llava_kit.model.vlm import LlavaModel
    from llava_kit.templates.base import ChatTemplate


@dataclass
class EvalContext:
    model: "LlavaModel"
    template: "ChatTemplate"
    run_dir: Path
    name: str
    # Where the model was trained to see the image (``model.image_position``), for
    # evaluators that lay out prompts of their own.
    image_position: str = "image_first"

    @property
    def results_dir(self) -> Path:
        """The folder the evaluator writes its files to."""
        return RunDir(self.run_dir).results


def refuse_overwrite(
    outputs: Iterable[Path], *, inputs: Iterable[Path] = (), force: bool = False,
    elsewhere: str = "--out DIR",
) -> None:
    """Stop before any work if writing ``outputs`` would replace an input, or, unless
    ``force``, a result that is already there (another evaluation's, perhaps)."""
    outputs = list(outputs)
    read = {path.resolve() for path in inputs}
    clashes = [path for path in outputs if path.resolve() in read]
    if clashes:
        raise LlavaKitError(
            f"{clashes[0]} is an input of this evaluation and would be overwritten by its output",
            hint=f"write the results elsewhere with {elsewhere}",
        )
    existing = [str(path) for path in outputs if path.exists()]
    if existing and not force:
        raise LlavaKitError(
            f"results already exist and would be overwritten: {', '.join(existing)}",
            hint=f"pass --force to replace them, or {elsewhere} to write elsewhere",
        )


@dataclass
class EvalResult:
    """Headline metrics, plus markdown sections for report.md."""

    metrics: dict[str, float]
    report_sections: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


class Evaluator(ABC):
    """Scores a trained model; writes its own files under ``context.results_dir``."""

    Options: ClassVar[type[Options]]

    def __init__(self, options: Options) -> None:
        self.options = options

    @abstractmethod
    def evaluate(self, context: EvalContext) -> EvalResult: ...

    def data_formats(self) -> list["DataFormat"]:
        """The data formats whose samples it evaluates, so `llava-kit data check` reads them
        as it reads a stage's data; none by default (nothing is checked ahead)."""
        return []
