"""Building a LlavaModel (and its template) from a recipe's resolved component specs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transformers import PreTrainedTokenizerBase

from llava_kit.connectors.base import Connector
from llava_kit.encoders.base import VisionEncoder
from llava_kit.llms.base import LanguageModel
from llava_kit.model.vlm import LlavaModel
from llava_kit.templates.base import ChatTemplate

if TYPE_CHECKING:
    from llava_kit.recipes.schema import ComponentSpec, ModelSpec


def instantiate(spec: "ComponentSpec", *args: Any) -> Any:
    """Every component class takes its validated options first, then kind-specific inputs."""
    return spec.entry.component(spec.options, *args)


def build_model(model: "ModelSpec") -> LlavaModel:
    encoder: VisionEncoder = instantiate(model.encoder)
    loader: LanguageModel = instantiate(model.llm)
    loaded = loader.load()
    llm_width = loaded.model.get_input_embeddings().embedding_dim
    connector: Connector = instantiate(model.connector, encoder.hidden_size, llm_width)
    return LlavaModel(encoder, connector, loaded.model, loaded.tokenizer)


def build_template(spec: "ComponentSpec", tokenizer: PreTrainedTokenizerBase) -> ChatTemplate:
    """The template ``spec`` names, as it renders for ``tokenizer``."""
    template: ChatTemplate = instantiate(spec)
    return template.for_tokenizer(tokenizer)
