"""Vicuna-style chat templates: ``v0`` (the paper's format), ``v1`` and ``llava_v1``.

``v0`` follows the layout the reference builds in ``_add_speaker_and_signal``
(llava/train/train.py): ``{system}\\n\\n### Human: {q}\\n### Assistant: {a}\\n### ...``.
Its loss mask is reduced to the paper's rule: every answer plus the ``\\n###`` that
closes it (the paper's <STOP>) is trained, nothing else.

``v1``/``llava_v1`` follow the reference's two-separator style:
``{system} USER: {q} ASSISTANT: {a}</s>USER: ...``; each answer and its ``</s>`` are trained.

In both, the space after the assistant role is trained with the answer: the generation
prompt ends at the role's colon, so the model writes that space itself.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from llava_kit.templates.rounds import RoundTemplate
from llava_kit.templates.token_checks import require_single_token

_HUMAN_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
_USER_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


class V0Template(RoundTemplate):
    """The paper's Vicuna v0 format: '### Human:' / '### Assistant:' turns closed by '###'."""

    name = "v0"
    system = _HUMAN_SYSTEM
    header = system + "\n\n"
    first_user_prefix = "### Human: "
    # The previous answer's closing "###" opens the next human turn.
    user_prefix = " Human: "
    user_suffix = "\n"
    assistant_role = "### Assistant:"
    answer_suffix = "\n###"
    stop_strings = ("###",)
    answer_stops = ("###",)


class V1Template(RoundTemplate):
    """Vicuna v1 format: '{system} USER: {q} ASSISTANT: {a}</s>'; '</s>' must be the eos."""

    name = "v1"
    system = _USER_SYSTEM
    header = system + " "
    first_user_prefix = "USER: "
    user_prefix = "USER: "
    user_suffix = " "
    assistant_role = "ASSISTANT:"
    answer_suffix = "</s>"
    stop_strings = ("</s>",)
    answer_stops = ("</s>",)

    def check_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        require_single_token(self.name, tokenizer, self.answer_suffix, role="eos",
                             purpose="closes every answer with")


class LlavaV1Template(V1Template):
    """LLaVA v1 format: the v1 layout with a 'curious human' system message."""

    name = "llava_v1"
    system = _HUMAN_SYSTEM
    header = system + " "
