"""`llava-kit data check`: every enabled stage's data and the eval data, all problems at once.

The fast path (run at the start of every `llava-kit run` that stops on bad samples) reads
the records, checks that ids are unique and that images exist inside the image root,
renders and tokenizes every sample with the stage's template and the recipe's tokenizer;
the full check also decodes every image. Only the tokenizer and configs are loaded, never
model weights. A stage's data is read and tokenized into its token store (or found there,
built by an earlier check or run), and the check reads what that build found; the
stage's dataset then reads the same store, so a run tokenizes its data once. A streamed
stage (``StreamedFormat``) has no store: its records are read one by one, and not at all at
the start of a run (``read_streams``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llava_kit.data.duplicates import find_duplicates, sample_location
from llava_kit.data.formats.base import DataFormat
from llava_kit.data.formats.problems import collecting_problems
from llava_kit.data.formats.streamed import StreamedFormat
from llava_kit.data.sample import Sample
from llava_kit.data.token_store.stage import stage_token_store
from llava_kit.datacheck.budget import load_tokenizer, visual_tokens_per_image
from llava_kit.datacheck.decode import undecodable_images
from llava_kit.datacheck.reading import report_reading
from llava_kit.datacheck.report import CheckReport
from llava_kit.datacheck.samples import TokenBudget, check_sample
from llava_kit.datacheck.stored import check_stored
from llava_kit.datacheck.streamed import check_streamed
from llava_kit.errors import LlavaKitError
from llava_kit.model.build import build_template, instantiate
from llava_kit.templates.fit import check_template_fits

if TYPE_CHECKING:
    from llava_kit.evaluators.base import Evaluator
    from llava_kit.recipes.schema import ComponentSpec, Recipe


def check_recipe(
    recipe: "Recipe", *, decode_images: bool, read_streams: bool = True
) -> CheckReport:
    """Check the data of every enabled stage and every evaluation of ``recipe``;
    ``read_streams`` False reads only the index of a streamed stage (the start of a run)."""
    report = CheckReport()
    tokenizer = load_tokenizer(recipe.model)  # a recipe always has an enabled stage
    visual_tokens = visual_tokens_per_image(recipe.model)
    for name, stage in recipe.enabled_stages.items():
        where, source = f"stages.{name}", _source_of(stage.data.options, stage.data.name)
        data_format: DataFormat | None = _build(stage.data, where, source, report)
        if data_format is None:
            continue
        try:
            template = build_template(stage.template or recipe.model.template, tokenizer)
            check_template_fits(template, tokenizer)
        except LlavaKitError as exc:
            template, unfit = None, exc.message
        budget = None if template is None else TokenBudget(
            template, tokenizer, recipe.model.image_position, recipe.runtime.seed,
            recipe.model.max_length, visual_tokens,
        )
        if isinstance(data_format, StreamedFormat):
            if budget is None:
                report.add("unusable_data", where, "model.template", None, unfit)
            check_streamed(recipe, name, data_format, budget, report,
                           read_records=read_streams, decode=decode_images)
            continue
        if budget is not None and _stored(recipe, name, data_format, budget, report,
                                          decode_images):
            continue
        loaded = _load(data_format, where, source, report)
        if loaded is None:
            continue
        if budget is None:
            report.add("unusable_data", where, "model.template", None, unfit)
            continue
        _check_samples(loaded, where, source, report, decode_images, budget)
    for name, spec in recipe.eval.items():
        where = f"eval.{name}"
        evaluator: Evaluator | None = _build(spec, where, spec.name, report)
        for data_format in [] if evaluator is None else evaluator.data_formats():
            source = _source_of(data_format.options, spec.name)
            loaded = _load(data_format, where, source, report)
            if loaded is not None:
                _check_samples(loaded, where, source, report, decode_images, None)
    return report


@dataclass(frozen=True)
class _Loaded:
    samples: list[Sample]
    repeated: frozenset[int]  # places of the samples whose id an earlier sample has


def _check_samples(
    loaded: _Loaded, where: str, source: str, report: CheckReport, decode: bool,
    budget: TokenBudget | None,
) -> None:
    samples = loaded.samples
    report.samples[where] += len(samples)
    images = list(dict.fromkeys(path for sample in samples for path in sample.images))
    unreadable = undecodable_images(images, where) if decode and images else {}
    for index, sample in enumerate(samples):

        def add(
            kind: str, message: str, sample_id: str = sample.id,
            record: str = sample_location(sample, index),
            keeps_id: bool = index not in loaded.repeated,
        ) -> None:
            report.add(kind, where, source, sample_id, message, record=record, drop_by_id=keeps_id)

        check_sample(sample, add, unreadable=unreadable, budget=budget)


def _stored(
    recipe: "Recipe", name: str, data_format: DataFormat, budget: TokenBudget,
    report: CheckReport, decode: bool,
) -> bool:
    """Check stage ``name`` from its token store (built now if needed); False when its data
    has no store and is to be checked sample by sample."""
    stage = recipe.stages[name]
    where, source = f"stages.{name}", _source_of(stage.data.options, stage.data.name)
    try:
        store = stage_token_store(recipe, name, stage, data_format, budget.template,
                                  budget.tokenizer)
    except LlavaKitError as exc:  # the data cannot be read at all
        report.add("unusable_data", where, source, None, str(exc))
        return True
    if store is None:
        return False
    check_stored(store, where, source, report, decode, budget)
    return True


def _build(spec: "ComponentSpec", where: str, source: str, report: CheckReport) -> Any:
    """The component ``spec`` names, or None (and one problem) when it cannot be built."""
    try:
        return instantiate(spec)
    except LlavaKitError as exc:
        report.add("unusable_data", where, source, None, str(exc))
        return None


def _load(
    data_format: DataFormat, where: str, source: str, report: CheckReport
) -> _Loaded | None:
    """The samples the format can read; its per-record problems, repeated ids and unknown
    fields go to ``report``; None (and one problem) when the data cannot be read at all."""
    try:
        with collecting_problems() as found:
            samples = data_format.load()
        # Reading the records again for their keys must neither raise nor repeat the
        # problems ``load`` already collected.
        with collecting_problems():
            unknown = data_format.unknown_fields()
    except LlavaKitError as exc:
        report.add("unusable_data", where, source, None, str(exc))
        return None
    repeated = report_reading(report, where, source, found, unknown,
                              find_duplicates(samples, found))
    return _Loaded(samples, repeated)


def _source_of(options: object, fallback: str) -> str:
    """The file or folder a data format's options point at, for the report."""
    for key in ("path", "root"):
        value = getattr(options, key, None)
        if value is not None:
            return str(value)
    return fallback
