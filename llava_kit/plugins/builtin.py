"""Built-in components, registered through the same hooks a third-party plugin uses.

Imports happen inside each hook so that one kind's missing optional dependency is
reported as a plugin failure without hiding the other kinds.
"""

from __future__ import annotations

from llava_kit.plugins.hookspecs import Register, hookimpl


@hookimpl
def register_encoders(register: Register) -> None:
    from llava_kit.encoders.hf_clip import HFCLIPEncoder
    from llava_kit.encoders.openclip import OpenCLIPEncoder

    register("hf_clip", HFCLIPEncoder)
    register("open_clip", OpenCLIPEncoder)


@hookimpl
def register_connectors(register: Register) -> None:
    from llava_kit.connectors.gated_xattn import GatedXAttnConnector
    from llava_kit.connectors.mlp import LinearConnector, MLPConnector
    from llava_kit.connectors.perceiver import PerceiverResamplerConnector
    from llava_kit.connectors.qformer import QFormerConnector

    register("linear", LinearConnector)
    register("mlp2x_gelu", MLPConnector)
    register("gated_xattn", GatedXAttnConnector)
    register("qformer", QFormerConnector)
    register("perceiver_resampler", PerceiverResamplerConnector)
    register("mlp{N}x_gelu", MLPConnector, pattern=r"mlp(?P<depth>[1-9][0-9]*)x_gelu")


@hookimpl
def register_llms(register: Register) -> None:
    from llava_kit.llms.hf_causal_lm import HFCausalLM

    register("hf_causal_lm", HFCausalLM)


@hookimpl
def register_data_formats(register: Register) -> None:
    from llava_kit.data.formats.captions import CaptionsFormat
    from llava_kit.data.formats.llava_json import LlavaJSONFormat
    from llava_kit.data.formats.scienceqa import ScienceQAFormat
    from llava_kit.data.streaming.format import ShardsFormat

    register("llava_json", LlavaJSONFormat)
    register("captions", CaptionsFormat)
    register("scienceqa", ScienceQAFormat)
    register("shards", ShardsFormat)


@hookimpl
def register_templates(register: Register) -> None:
    from llava_kit.templates.chatml import ChatMLDirectTemplate
    from llava_kit.templates.hf_chat import HfChatTemplate
    from llava_kit.templates.llama2 import LlavaLlama2Template, MistralInstructTemplate
    from llava_kit.templates.plain import PlainTemplate
    from llava_kit.templates.vicuna import LlavaV1Template, V0Template, V1Template

    register("plain", PlainTemplate)
    register("v0", V0Template)
    register("v1", V1Template)
    register("llava_v1", LlavaV1Template)
    register("llava_llama_2", LlavaLlama2Template)
    register("mistral_instruct", MistralInstructTemplate)
    register("chatml_direct", ChatMLDirectTemplate)
    register("hf_chat", HfChatTemplate)


@hookimpl
def register_evaluators(register: Register) -> None:
    from llava_kit.evaluators.scienceqa import ScienceQAEvaluator

    register("scienceqa", ScienceQAEvaluator)
    from llava_kit.evaluators.llava_bench import LlavaBenchEvaluator

    register("llava_bench", LlavaBenchEvaluator)
    # lmms-eval itself is imported only when the evaluation runs (the optional lmms extra).
    from llava_kit.lmms.evaluator import LmmsEvalEvaluator

    register("lmms_eval", LmmsEvalEvaluator)


@hookimpl
def register_trackers(register: Register) -> None:
    # Each tool is imported when its tracker starts: registering needs none of them.
    from llava_kit.trackers.jsonl import JsonlTracker
    from llava_kit.trackers.mlflow_tracker import MlflowTracker
    from llava_kit.trackers.tensorboard_tracker import TensorBoardTracker
    from llava_kit.trackers.wandb_tracker import WandbTracker

    register("jsonl", JsonlTracker)
    register("tensorboard", TensorBoardTracker)
    register("wandb", WandbTracker)
    register("mlflow", MlflowTracker)
