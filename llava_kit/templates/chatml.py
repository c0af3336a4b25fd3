"""``chatml_direct``: the ChatML format of LLaVA-1.6's Yi-34B checkpoint.

Rendered as the reference's MPT separator style (llava/conversation.py) renders it, turns
joined without newlines:
``<|im_start|>system\\nAnswer the questions.<|im_end|><|im_start|>user\\n{q}<|im_end|>``
``<|im_start|>assistant\\n{a}<|im_end|>...``. The generation prompt ends with
``<|im_start|>assistant\\n``, so ``{answer}<|im_end|>`` is trained.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from llava_kit.templates.rounds import RoundTemplate
from llava_kit.templates.token_checks import require_single_token

_START, _END = "<|im_start|>", "<|im_end|>"


class ChatMLDirectTemplate(RoundTemplate):
    """ChatML turns with the short system message 'Answer the questions.'."""

    name = "chatml_direct"
    header = f"{_START}system\nAnswer the questions.{_END}"
    first_user_prefix = f"{_START}user\n"
    user_prefix = f"{_START}user\n"
    user_suffix = _END
    assistant_role = f"{_START}assistant\n"
    answer_prefix = ""
    answer_suffix = _END
    stop_strings = (_END,)
    answer_stops = (_END, _START)

    def check_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        require_single_token(self.name, tokenizer, _END, purpose="closes every answer with")
        require_single_token(self.name, tokenizer, _START, purpose="opens every turn with")
