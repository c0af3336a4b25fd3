"""Checking a streamed stage (``StreamedFormat``): the settings a stream cannot honour and,
when asked for, every record read once.

The start-of-run check reads only the index (a web-scale set is not read before the first
step); `llava-kit data check` reads every record: its text, its tokens under the stage's
template, and its images' bytes decoded when images are decoded.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from llava_kit.data.formats.streamed import StreamedFormat, StreamRecord
from llava_kit.data.images import decode_image
from llava_kit.data.sample_tokens import has_answer, text_problems
from llava_kit.datacheck.report import CheckReport
from llava_kit.datacheck.samples import TokenBudget, check_tokens
from llava_kit.errors import LlavaKitError

if TYPE_CHECKING:
    from llava_kit.recipes.schema import Recipe


def check_streamed(
    recipe: "Recipe", name: str, data_format: StreamedFormat, budget: TokenBudget | None,
    report: CheckReport, *, read_records: bool, decode: bool,
) -> None:
    where, source = f"stages.{name}", str(getattr(data_format.options, "path", name))
    for problem in unstreamable_settings(recipe, name):
        report.add("unusable_data", where, source, None, problem)
    try:
        report.samples[where] += data_format.num_samples()
        if not read_records:
            return
        for record in data_format.records():
            _check_record(record, where, source, report, budget, decode)
    except LlavaKitError as exc:  # no index, a damaged shard: the data cannot be read
        report.add("unusable_data", where, source, None,
                   f"{exc.message} ({exc.hint})" if exc.hint else exc.message)


def unstreamable_settings(recipe: "Recipe", name: str) -> list[str]:
    """What the recipe asks of stage ``name`` that needs every sample before the first step."""
    stage, found = recipe.stages[name], []
    if stage.batch.group_by_length:
        found.append(f"stages.{name}.batch.group_by_length needs every sample's length before "
                     "the first step, and a streamed stage reads its samples as it trains: "
                     "set it to false")
    if recipe.runtime.feature_cache is not None:
        found.append(f"runtime.feature_cache keys features by image file, and stage {name} "
                     "streams image bytes from shards: unset runtime.feature_cache, or train "
                     "this stage from a JSON data file")
    return found


def _check_record(
    record: StreamRecord, where: str, source: str, report: CheckReport,
    budget: TokenBudget | None, decode: bool,
) -> None:
    sample = record.sample

    def add(kind: str, message: str) -> None:
        report.add(kind, where, source, sample.id, f"{record.location}: {message}",
                   record=record.location)

    counted = record.named_images()
    for kind, message in text_problems(counted):
        add(kind, message)
    if decode:
        for name, data in record.images:
            try:
                decode_image(io.BytesIO(data), name=f"{record.location}/{name}")
            except LlavaKitError as exc:
                add("unreadable_image", exc.message)
    if budget is not None and has_answer(sample):
        check_tokens(counted, add, budget)
