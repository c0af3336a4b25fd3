"""A recipe stage's data through the token store, as the data check and the stage's
dataset both ask for it (so the second finds what the first built)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from transformers import PreTrainedTokenizerBase

from llava_kit.data.formats.base import DataFormat
from llava_kit.data.sample_tokens import Placement
from llava_kit.data.token_store.cache import StoreRequest, default_root, open_token_store
from llava_kit.data.token_store.store import TokenStore
from llava_kit.templates.base import ChatTemplate

if TYPE_CHECKING:
    from llava_kit.recipes.schema import ComponentSpec, Recipe, StageSpec

log = logging.getLogger("llava_kit")


def stage_token_store(
    recipe: "Recipe", name: str, stage: "StageSpec", data_format: DataFormat,
    template: ChatTemplate, tokenizer: PreTrainedTokenizerBase,
) -> TokenStore | None:
    """The store of stage ``name``'s data; None when the data is to be tokenized directly:
    its format cannot name its files, or the store folder cannot be written (a warning)."""
    template_spec = stage.template or recipe.model.template
    request = StoreRequest(
        _pair(stage.data), data_format, _pair(template_spec), template, tokenizer,
        Placement(recipe.model.image_position, recipe.runtime.seed), f"stages.{name}",
    )
    root = recipe.runtime.token_store or default_root()
    try:
        return open_token_store(request, root)
    except OSError as exc:
        log.warning(
            "token store: cannot use %s (%s); tokenizing stages.%s in memory instead. Set "
            "runtime.token_store to a writable folder with free space to tokenize once.",
            root, exc.strerror or exc, name,
        )
        return None


def _pair(spec: "ComponentSpec") -> tuple[str, dict[str, object]]:
    return spec.name, spec.options.model_dump(mode="json")

