"""The models lmms-eval's command line builds: ``--model llava_kit`` (or ``llava_kit_chat``)
``--model_args pretrained=RUN_DIR`` (with optional ``device``, ``batch_size``,
``max_new_tokens``). The run directory or export is opened through
``llava_kit.loading.open_model``, so every connector, plugins' included, loads as it trained,
LoRA merged. Kept apart from ``model.py``, which llava-kit's own evaluator uses on a model
in memory and which must not depend on opening runs.
"""

from __future__ import annotations

from typing import Any

from lmms_eval.api.model import lmms

from llava_kit.errors import LlavaKitError
from llava_kit.lmms.chat_model import LlavaKitChatLMM
from llava_kit.lmms.model import DEFAULT_MAX_NEW_TOKENS, LlavaKitLMM

_MODEL_ARGS = "pretrained=RUN_DIR and optionally device=auto|cpu|cuda, batch_size=N, max_new_tokens=N"


class _FromRun:
    """``__init__`` from lmms-eval's model_args: open the run, then set the model up."""

    def __init__(
        self,
        pretrained: str | None = None,
        device: str | None = None,
        batch_size: int | str = 16,
        max_new_tokens: int | str = DEFAULT_MAX_NEW_TOKENS,
        **unknown: Any,
    ) -> None:
        from llava_kit.loading import open_model

        lmms.__init__(self)  # type: ignore[arg-type]
        if unknown:
            raise LlavaKitError(
                f"model_args {', '.join(sorted(unknown))}: not an option of llava-kit's model",
                hint=f"give {_MODEL_ARGS}",
            )
        if not pretrained:
            raise LlavaKitError("model_args has no pretrained=", hint=f"give {_MODEL_ARGS}")
        opened = open_model(pretrained, device=_device_choice(device))
        self._setup(  # type: ignore[attr-defined]
            opened.model, opened.template, opened.recipe.model.image_position,
            _whole(batch_size, "batch_size"), _whole(max_new_tokens, "max_new_tokens"))


class RunLMM(_FromRun, LlavaKitLMM):
    """A llava-kit run directory or export, as an lmms-eval model (simple interface)."""


class RunChatLMM(_FromRun, LlavaKitChatLMM):
    """A llava-kit run directory or export, as an lmms-eval chat model."""


def _device_choice(device: str | None) -> Any:
    """lmms-eval's ``--device`` (``cuda:0`` included) as llava-kit's device rule takes it."""
    if device is None:
        return None
    choice = device.split(":")[0]
    if choice not in ("auto", "cpu", "cuda"):
        raise LlavaKitError(f"device {device!r} is not auto, cpu or cuda",
                            hint="pass --device cpu, cuda or auto")
    return choice


def _whole(value: int | str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise LlavaKitError(f"model_args {name}={value!r} is not a whole number",
                            hint=f"give {name} as a number, e.g. {name}=16") from None
