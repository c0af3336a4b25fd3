"""LLaMA-2-style templates of LLaVA-1.5/1.6 checkpoints: ``llava_llama_2``, ``mistral_instruct``.

Rendered as the reference's LLAMA_2 separator style (llava/conversation.py) renders them:
``[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{q1} [/INST] {a1} </s>``
``<s>[INST] {q2} [/INST] {a2} </s>``.
The system block is left out when the system message is empty (``mistral_instruct``),
whose turns are also joined without the ``<s>`` separator. The generation prompt ends at
``[/INST]``, so `` {answer} </s>`` is trained.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from llava_kit.templates.rounds import RoundTemplate
from llava_kit.templates.token_checks import require_single_token

_LLAVA_SYSTEM = (
    "You are a helpful language and vision assistant. You are able to understand the visual "
    "content that the user provides, and assist the user with a variety of tasks using "
    "natural language."
)


def _first_instruction(system: str) -> str:
    """The opening of the first user turn; a system message sits inside it, in tags."""
    return "[INST] " + (f"<<SYS>>\n{system}\n<</SYS>>\n\n" if system else "")


class _Llama2Template(RoundTemplate):
    header = ""
    user_suffix = " [/INST]"
    assistant_role = ""
    answer_suffix = " </s>"
    stop_strings = ("</s>",)
    answer_stops = ("</s>",)

    def check_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        require_single_token(self.name, tokenizer, "</s>", role="eos",
                             purpose="closes every answer with")
        separator = self.user_prefix.removesuffix("[INST] ")
        if separator:
            require_single_token(self.name, tokenizer, separator, role="bos",
                                 purpose="opens every later user turn with")


class LlavaLlama2Template(_Llama2Template):
    """LLaVA's LLaMA-2 chat format, with LLaVA's own system message."""

    name = "llava_llama_2"
    first_user_prefix = _first_instruction(_LLAVA_SYSTEM)
    user_prefix = "<s>[INST] "


class MistralInstructTemplate(_Llama2Template):
    """Mistral-Instruct's format: LLaMA-2 turns, no system message, no '<s>' between turns."""

    name = "mistral_instruct"
    first_user_prefix = _first_instruction("")
    user_prefix = "[INST] "
