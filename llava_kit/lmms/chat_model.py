"""llava-kit's model in lmms-eval, chat interface (``--model llava_kit_chat``): generation
requests arrive as the chat messages of the task's ``doc_to_messages``, images in place.

lmms-eval builds those messages itself for tasks that define only ``doc_to_visual`` and
``doc_to_text`` (images first, then the text), so such a task gets the same prompts, and
the same answers, through either interface.
"""

from __future__ import annotations

from lmms_eval.api.instance import Instance

from llava_kit.lmms.model import LlavaKitLMM, AnswerJob
from llava_kit.lmms.requests import chat_prompt, generation_settings


class LlavaKitChatLMM(LlavaKitLMM):
    """A llava-kit run directory or export, as an lmms-eval chat model."""

    is_simple = False

    def generate_until(self, requests: list[Instance]) -> list[str]:
        jobs = []
        for index, request in enumerate(requests):
            context, doc_to_messages, gen_kwargs, doc_id, task, split = request.args

            def build(index=index, doc_to_messages=doc_to_messages, doc_id=doc_id, task=task,
                      split=split):
                messages = doc_to_messages(self.task_dict[task][split][doc_id])
                return chat_prompt(f"{task}/{doc_id}/{index}", messages, self.image_position,
                                   f"task {task!r} (doc {doc_id})")

            jobs.append(AnswerJob(generation_settings(gen_kwargs, self.max_new_tokens, task),
                             len(context or ""), build))
        return self._answer(jobs)
