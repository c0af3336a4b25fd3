"""The LLaVA-1.5 benchmark suite through lmms-eval, for llava-kit runs.

lmms-eval (the optional ``lmms`` extra) finds llava-kit's model through its
``lmms_eval.models`` entry point (``--model llava_kit --model_args pretrained=RUN_DIR``);
``llava-kit eval lmms`` and the ``lmms_eval`` evaluator call its programmatic entry with
the model in hand. Nothing here imports lmms-eval until an evaluation starts, so llava-kit
works without the extra.
"""

from __future__ import annotations

import importlib.util

from llava_kit.errors import LlavaKitError

INSTALL = 'pip install "llava-kit[lmms]"'


def lmms_eval_missing() -> bool:
    return importlib.util.find_spec("lmms_eval") is None


def require_lmms_eval() -> None:
    """One screen with the install command when the extra is missing."""
    if lmms_eval_missing():
        raise LlavaKitError(
            "lmms-eval is not installed; the LLaVA-1.5 benchmark suite runs through it",
            hint=f"install it with: {INSTALL}",
        )
