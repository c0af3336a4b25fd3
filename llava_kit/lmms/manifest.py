"""What lmms-eval's ``lmms_eval.models`` entry point loads: llava-kit's models.

``llava_kit`` is the simple interface (generation, log-likelihood and multi-round tasks);
``llava_kit_chat`` reads the chat messages of a task's ``doc_to_messages`` instead (lmms-eval
runs generation tasks only that way). Two ids, so that ``--model llava_kit`` is the one that
runs every task type.
"""

from __future__ import annotations

from lmms_eval.models.registry_v2 import ModelManifest

MODEL_ID = "llava_kit"
CHAT_MODEL_ID = "llava_kit_chat"


def llava_kit_models() -> list[ModelManifest]:
    return [
        ModelManifest(model_id=MODEL_ID, simple_class_path="llava_kit.lmms.run_models.RunLMM"),
        ModelManifest(model_id=CHAT_MODEL_ID,
                      chat_class_path="llava_kit.lmms.run_models.RunChatLMM"),
    ]
