"""The recipe schema: one typed, validated description of a whole run.

Field names are a contract shared with the model builder, the stage runner and the
evaluators. Every section forbids unknown keys so that a typo is an error, not a silent
default. Checks that involve several fields (batch divisibility, LoRA needing the LLM)
live next to the fields they read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llava_kit.recipes.component_spec import (
    ComponentSpec,
    ConnectorSpec,
    DataSpec,
    EncoderSpec,
    EvaluatorSpec,
    LLMSpec,
    TemplateSpec,
    TrackerSpec,
)
from llava_kit.recipes.deepspeed_presets import DEEPSPEED_PRESETS, NO_DEEPSPEED
from llava_kit.recipes.problems import (
    did_you_mean,
    field_problem,
    problem_details,
    problems_error,
    show_value,
)
from llava_kit.recipes.typepath import annotation_at

TRAINABLE_GROUPS: tuple[str, ...] = ("connector", "llm", "encoder")
PREFIX_MARKER = "prefix:"

# Recipe, stage and eval names become directory names (runs/<name>/, checkpoints/<stage>/).
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_NAME_RULE = "use letters, digits, '_', '.', '-' and start with a letter or digit"
_MODULE_PATH_RE = re.compile(r"\w+(\.\w+)*")


class RecipeSection(BaseModel):
    """A recipe section: unknown keys are errors, and so are infinite or NaN numbers."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)


class ModelSpec(RecipeSection):
    encoder: EncoderSpec
    connector: ConnectorSpec
    llm: LLMSpec
    template: TemplateSpec
    # model_max_length, counted after the visual tokens are spliced in.
    max_length: int = Field(2048, gt=0)
    # Where <image> goes in the first user turn (the paper randomises it; the reference
    # code always puts it first).
    image_position: Literal["image_first", "question_first", "random"] = "image_first"


class BatchSpec(RecipeSection):
    global_size: int = Field(gt=0)
    micro_size: int = Field(gt=0)
    # Micro batches of similar token length, images and text-only apart (less padding).
    group_by_length: bool = False

    @model_validator(mode="after")
    def _divisible(self) -> BatchSpec:
        if self.global_size % self.micro_size:
            raise field_problem(
                ("global_size",),
                f"{self.global_size} is not divisible by micro_size {self.micro_size}; "
                "gradient accumulation needs global_size = micro_size x accumulation steps x GPUs",
                self.global_size,
            )
        return self


class OptimizerSpec(RecipeSection):
    lr: float = Field(gt=0)
    # A separate learning rate for the connector (reference: mm_projector_lr); None = lr.
    connector_lr: float | None = Field(None, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    # None turns gradient clipping off.
    max_grad_norm: float | None = Field(1.0, gt=0)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float]) -> tuple[float, float]:
        bad = [i for i, beta in enumerate(betas) if not 0 <= beta < 1]
        if bad:
            raise problems_error([
                problem_details((i,), f"must be in [0, 1), got {betas[i]}", betas[i]) for i in bad
            ])
        return betas


class LoraSpec(RecipeSection):
    """LoRA adapters on the LLM (the reference LLaVA-1.5 LoRA run: r 128, alpha 256)."""

    r: int = Field(128, gt=0)
    alpha: float = Field(256, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    # None = every linear layer of the LLM, as in the reference LoRA run.
    target_modules: Annotated[list[str], Field(min_length=1)] | None = None


class StageSpec(RecipeSection):
    enabled: bool = True
    data: DataSpec
    # Overrides model.template for this stage (stage 1 usually trains with "plain").
    template: TemplateSpec | None = None
    # connector | llm | encoder | "prefix:<dotted.module.prefix>" of the assembled model.
    # With lora set, "llm" trains the adapters, not the LLM's own weights.
    trainable: list[str]
    lora: LoraSpec | None = None
    # None = the previous enabled stage's connector (fresh for the first stage).
    init_connector_from: Path | None = None
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, gt=0)
    batch: BatchSpec
    optimizer: OptimizerSpec
    gradient_checkpointing: bool = False
    save_every_steps: int | None = Field(None, gt=0)
    # Step checkpoints kept on disk (the newest ones); the reference keeps 1.
    keep_checkpoints: int = Field(1, ge=1)
    # Run the recipe's evaluators at each epoch end; metrics go to metrics.jsonl (grid curves).
    eval_every_epoch: bool = False

    @field_validator("trainable")
    @classmethod
    def _known_groups(cls, trainable: list[str]) -> list[str]:
        if not trainable:
            raise ValueError("is empty: list what this stage trains, e.g. connector")
        details = []
        seen: set[str] = set()
        for index, item in enumerate(trainable):
            problem = _trainable_problem(item)
            if problem is None and item in seen:
                problem = f"{item!r} is listed twice"
            if problem is not None:
                details.append(problem_details((index,), problem, item))
            seen.add(item)
        if details:
            raise problems_error(details)
        return trainable

    @model_validator(mode="after")
    def _lora_needs_llm(self) -> StageSpec:
        if self.lora is not None and "llm" not in self.trainable:
            raise field_problem(
                ("lora",),
                "LoRA adapts the LLM, but 'llm' is not in trainable; add it or set lora: null",
                None,
            )
        return self


class DemoDataSpec(RecipeSection):
    """Synthetic ScienceQA generated into ``out`` on first use (the built-in demo recipes)."""

    out: Path
    n: int = Field(1500, gt=0)
    seed: int = 0


class RuntimeSpec(RecipeSection):
    seed: int = Field(42, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # auto = bf16 where the device supports it, else fp32.
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    # One of DEEPSPEED_PRESETS or a path to a DeepSpeed JSON config.
    deepspeed: str = NO_DEEPSPEED
    # None = runs/<recipe name>/<timestamp>.
    output_dir: Path | None = None
    num_workers: int = Field(0, ge=0)
    # Plain-text progress lines every N steps (None: about 20 lines per stage).
    log_every: int | None = Field(None, gt=0)
    demo_data: DemoDataSpec | None = None
    # Bad training samples found by the data check: stop the run, or leave them out
    # (listed in skipped_samples.jsonl).
    on_bad_sample: Literal["error", "skip"] = "error"
    # A non-finite loss: stop the stage (the last checkpoint stays), or drop that step.
    on_nan: Literal["stop", "skip_batch"] = "stop"
    # Folder of frozen-encoder features, reused across epochs, stages and runs.
    feature_cache: Path | None = None
    # torch.compile the LLM (worth it on a GPU for long runs; compiling takes minutes).
    compile: bool = False
    # Experiment trackers the run also logs to (metrics.jsonl is always written), e.g.
    # [tensorboard, {name: wandb, project: llava, mode: offline}].
    trackers: list[TrackerSpec] = Field(default_factory=list)
    # Folder of token stores (each stage's data tokenized once, shared by ranks, workers,
    # stages, runs and grid cells); None: $LLAVA_KIT_CACHE/tokens or ~/.cache/llava-kit/tokens.
    token_store: Path | None = None

    @field_validator("trackers")
    @classmethod
    def _each_tracker_once(cls, trackers: list[TrackerSpec]) -> list[TrackerSpec]:
        seen: set[str] = set()
        details = []
        for index, tracker in enumerate(trackers):
            if tracker.name in seen:
                details.append(problem_details(
                    (index,), f"{tracker.name!r} is listed twice; list each tracker once",
                    tracker.name))
            seen.add(tracker.name)
        if details:
            raise problems_error(details)
        return trackers

    @field_validator("deepspeed", mode="before")
    @classmethod
    def _deepspeed_choice(cls, value: Any) -> Any:
        if value is None:
            return NO_DEEPSPEED  # YAML `deepspeed: null` means the same as none
        is_preset_or_file = value in DEEPSPEED_PRESETS or str(value).endswith(".json")
        if isinstance(value, str) and not is_preset_or_file:
            raise ValueError(
                f"must be one of {', '.join(DEEPSPEED_PRESETS)} or a path to a .json file, "
                f"got {value!r}{did_you_mean(value, DEEPSPEED_PRESETS)}"
            )
        return value


class Recipe(RecipeSection):
    """A whole run: the model, its training stages in order, evaluations, runtime settings."""

    name: str
    description: str | None = None
    model: ModelSpec
    # Ordered: stages run in the order the recipe lists them.
    stages: dict[str, StageSpec]
    eval: dict[str, EvaluatorSpec] = Field(default_factory=dict)
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)

    @field_validator("name")
    @classmethod
    def _usable_as_directory(cls, name: str) -> str:
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"{name!r} names the run directory: {_NAME_RULE}")
        return name

    @field_validator("stages")
    @classmethod
    def _runnable_stages(cls, stages: dict[str, StageSpec]) -> dict[str, StageSpec]:
        if not any(stage.enabled for stage in stages.values()):
            raise ValueError(
                "no enabled stage; enable one (enabled: true) or add a stage"
                if stages else "no stages; add at least one (e.g. pretrain) under stages"
            )
        _check_directory_names(stages)
        return stages

    @field_validator("eval")
    @classmethod
    def _eval_names(cls, evals: dict[str, EvaluatorSpec]) -> dict[str, EvaluatorSpec]:
        _check_directory_names(evals)
        return evals

    @property
    def enabled_stages(self) -> dict[str, StageSpec]:
        """The stages that will run, in order."""
        return {name: stage for name, stage in self.stages.items() if stage.enabled}

    @property
    def answer_template(self) -> TemplateSpec:
        """The template the model was last trained with: the one it answers in."""
        enabled = list(self.enabled_stages.values())
        last = enabled[-1].template if enabled else None
        return last if last is not None else self.model.template


def component_name_key(path: Sequence[str | int]) -> str | None:
    """The key holding the component name at ``path`` (name, or format for data), if any.

    Lets ``extends`` and ``--set`` turn a bare name (``connector: linear``) into a mapping
    before changing one of its keys.
    """
    annotation = annotation_at(Recipe, path)
    if isinstance(annotation, type) and issubclass(annotation, ComponentSpec):
        return annotation.name_key
    return None


def _trainable_problem(item: Any) -> str | None:
    if not isinstance(item, str):
        return f"must be text, got {show_value(item)}"
    if item in TRAINABLE_GROUPS:
        return None
    if item.startswith(PREFIX_MARKER):
        prefix = item[len(PREFIX_MARKER):]
        if _MODULE_PATH_RE.fullmatch(prefix):
            return None
        return (
            f"{item!r}: after 'prefix:' give a dotted module path, e.g. prefix:llm.model.layers.0"
        )
    return (
        f"unknown trainable {item!r}; use connector, llm, encoder or prefix:<module.path>"
        f"{did_you_mean(item, TRAINABLE_GROUPS)}"
    )


def _check_directory_names(named: dict[str, Any]) -> None:
    bad = [name for name in named if not _NAME_RE.fullmatch(name)]
    if bad:
        raise problems_error([
            problem_details((name,), f"the name {name!r} becomes a directory: {_NAME_RULE}", name)
            for name in bad
        ])
