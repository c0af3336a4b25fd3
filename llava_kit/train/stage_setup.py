"""Everything a stage needs before its first step: the trainable set, the connector it
starts from, its data (a dataset with the feature cache and the batch plan, or a stream)
and the backend's engine."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from llava_kit.data.dataset import ConversationDataset, tokenize_samples
from llava_kit.data.duplicates import first_of_each_id
from llava_kit.data.formats.streamed import StreamedFormat, StreamSettings
from llava_kit.data.formats.problems import collecting_problems
from llava_kit.data.sample_tokens import Placement
from llava_kit.data.token_store.stage import stage_token_store
from llava_kit.datacheck.streamed import unstreamable_settings
from llava_kit.errors import RecipeError
from llava_kit.model.build import build_template, instantiate
from llava_kit.model.vlm import LlavaModel
from llava_kit.recipes.deepspeed_presets import NO_DEEPSPEED
from llava_kit.templates.fit import check_template_fits
from llava_kit.train.backend import Backend, OptimizerSetup, PlainBackend
from llava_kit.train.batches import BatchPlan, PaddingMeter, sample_lengths
from llava_kit.train.checkpoint import load_connector_strict, verify_checkpoint
from llava_kit.train.context import RunContext
from llava_kit.train.features import attach_feature_cache
from llava_kit.train.stage_data import PlannedData, StageData, StreamedData
from llava_kit.train.freeze import apply_trainable
from llava_kit.train.lora import apply_lora
from llava_kit.train.optim import lr_lambda, param_groups
from llava_kit.train.zero3 import is_zero3_partitioned

if TYPE_CHECKING:
    from llava_kit.recipes.schema import Recipe, StageSpec


@dataclass
class PreparedStage:
    """A stage ready to loop: what trains, over which data, in which steps, on which engine."""

    trainable_params: int
    total_params: int
    data: StageData
    setup: OptimizerSetup
    backend: Backend
    engine: torch.nn.Module


def prepare_stage(
    ctx: RunContext, model: LlavaModel, name: str, stage: "StageSpec", previous_stage: str | None
) -> PreparedStage:
    if stage.lora is not None:
        apply_lora(model, stage.lora)
    trainable = apply_trainable(
        model, stage.trainable, field=f"stages.{name}.trainable", lora=stage.lora is not None
    )
    total_params = sum(p.numel() for p in model.parameters())
    _init_connector(ctx, model, stage, previous_stage)
    if stage.gradient_checkpointing:
        model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if ctx.recipe.runtime.compile:
        model.llm.compile()  # in place: parameter names (checkpoints) stay the same
    data = stage_data(ctx, model, name, stage)
    setup = optimizer_setup(model, stage, data.plan, ctx.precision)
    backend = make_backend(ctx.recipe.runtime.deepspeed)
    engine = backend.prepare(model, setup)
    return PreparedStage(trainable, total_params, data, setup, backend, engine)


def stage_data(ctx: RunContext, model: LlavaModel, name: str, stage: "StageSpec") -> StageData:
    """The stage's samples and the plan of its steps: a dataset in the batch plan's order
    (with the feature cache when set), or a streamed format's micro batches."""
    recipe, batch = ctx.recipe, stage.batch
    data_format = instantiate(stage.data)
    if isinstance(data_format, StreamedFormat):
        return streamed_data(ctx, model, name, stage, data_format)
    dataset = stage_dataset(ctx, model, name, stage)
    if recipe.runtime.feature_cache is not None:
        attach_feature_cache(dataset, model, recipe.runtime.feature_cache, ctx)
    lengths, has_image = sample_lengths(dataset.source, model.num_visual_tokens,
                                        recipe.model.max_length)
    grouping: dict[str, Any] = {"lengths": lengths, "has_image": has_image} \
        if batch.group_by_length else {}
    plan = BatchPlan(len(dataset), batch.global_size, batch.micro_size, ctx.dist.world_size,
                     recipe.runtime.seed, **grouping)
    return PlannedData(dataset, plan, PaddingMeter(plan, lengths))


def streamed_data(
    ctx: RunContext, model: LlavaModel, name: str, stage: "StageSpec",
    data_format: StreamedFormat,
) -> StreamedData:
    recipe, batch = ctx.recipe, stage.batch
    unstreamable = unstreamable_settings(recipe, name)  # the start-of-run check said so too
    if unstreamable:
        raise RecipeError(unstreamable[0], hint="change the recipe and run again")
    template = build_template(stage.template or recipe.model.template, model.tokenizer)
    check_template_fits(template, model.tokenizer)
    settings = StreamSettings(
        template=template, tokenizer=model.tokenizer, preprocess=model.encoder.preprocess,
        micro_size=batch.micro_size,
        placement=Placement(recipe.model.image_position, recipe.runtime.seed),
        seed=recipe.runtime.seed,
    )
    plan = BatchPlan(data_format.num_samples(), batch.global_size, batch.micro_size,
                     ctx.dist.world_size, recipe.runtime.seed)
    return StreamedData(data_format, settings, plan)


def stage_dataset(
    ctx: RunContext, model: LlavaModel, name: str, stage: "StageSpec"
) -> ConversationDataset:
    recipe = ctx.recipe
    template = build_template(stage.template or recipe.model.template, model.tokenizer)
    skip = (ctx.skipped or {}).get(name)
    data_format = instantiate(stage.data)
    check_template_fits(template, model.tokenizer)  # a store exists only for a fitting pair
    store = stage_token_store(recipe, name, stage, data_format, template, model.tokenizer)
    if store is not None:  # usually built by the data check at the start of the run
        return ConversationDataset(store.rows(skip), model.encoder.preprocess)
    if skip is None:
        samples = data_format.load()
    else:  # the readers drop bad records and later duplicates go next, as the data check
        # listed them; then every id names one sample, so dropping by id drops only it.
        with collecting_problems():
            loaded = first_of_each_id(data_format.load())
        samples = [s for s in loaded if s.id not in skip]
    tokenized = tokenize_samples(
        samples, template, model.tokenizer,
        image_position=recipe.model.image_position, seed=recipe.runtime.seed,
    )
    return ConversationDataset(tokenized, model.encoder.preprocess)


def optimizer_setup(
    model: LlavaModel, stage: "StageSpec", plan: BatchPlan, precision: str
) -> OptimizerSetup:
    opt = stage.optimizer
    total = math.ceil(plan.steps_per_epoch * stage.epochs)
    if stage.max_steps is not None:
        total = min(total, stage.max_steps)
    total = max(1, total)
    return OptimizerSetup(
        param_groups=param_groups(
            model, lr=opt.lr, weight_decay=opt.weight_decay, connector_lr=opt.connector_lr
        ),
        betas=tuple(opt.betas),  # type: ignore[arg-type]
        eps=opt.eps,
        max_grad_norm=opt.max_grad_norm,
        total_steps=total,
        lr_lambda=lr_lambda(total, opt.warmup_ratio, opt.schedule),
        micro_batch_size=stage.batch.micro_size,
        grad_accumulation=plan.accumulation,
        precision=precision,
    )


def make_backend(choice: str) -> Backend:
    if choice == NO_DEEPSPEED:
        return PlainBackend()
    from llava_kit.train.deepspeed_backend import DeepSpeedBackend

    return DeepSpeedBackend(choice)


def _init_connector(
    ctx: RunContext, model: LlavaModel, stage: "StageSpec", previous_stage: str | None
) -> None:
    """The connector starts from ``init_connector_from``, else from the previous stage's."""
    source = stage.init_connector_from
    if source is None and previous_stage is not None:
        previous = ctx.layout.stage(previous_stage)
        verify_checkpoint(previous.final)  # it vouches for the connector beside it
        source = str(previous.connector)
    if source is None:
        return
    if is_zero3_partitioned(model.connector):
        from safetensors.torch import load_file

        from llava_kit.train.deepspeed_backend import load_into_zero3

        load_into_zero3(model.connector, load_file(source), str(source))
        return
    load_connector_strict(model.connector, Path(source), recipe_fields=_shape_fields(ctx.recipe))


def _shape_fields(recipe: "Recipe") -> dict[str, str]:
    """The recipe choices that decide the connector's tensor shapes (for error messages)."""
    model = recipe.model
    return {
        "model.connector": f"{model.connector.name} {model.connector.options.model_dump()}",
        "model.encoder": f"{model.encoder.name} {model.encoder.options.model_dump()}",
        "model.llm": f"{model.llm.name} {model.llm.options.model_dump()}",
    }
