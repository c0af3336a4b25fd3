"""Whether a tokenizer fits a template, checked once when a stage's data is loaded.

Beyond the template's own check of its special tokens, a short probe conversation with
the answer shapes that break tokenizers most often (a digit first, a quote first, a
leading space, non-ASCII text) is tokenized twice: as training text and as generation
prompts. For every answer, the prompt's ids must be exactly the training ids before the
answer, and the answer's first token must be the first trained one; otherwise the model
would be trained on token sequences it never sees when it generates.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from llava_kit.constants import IGNORE_INDEX
from llava_kit.errors import DataError
from llava_kit.templates.base import ChatTemplate, Message
from llava_kit.templates.tokenize import tokenize_conversation, tokenize_prompt

_PROBE = (
    ("<image>\nHow many apples are there?", "3"),
    ("And in words?", '"Three", I counted.'),
    ("Where are they?", " Über dem Tisch, 東京."),
)
_HINT = (
    "load the tokenizer the way the model was trained (model.llm.use_fast_tokenizer, "
    "tokenizer_legacy), or pick the template the model was built for"
)


def check_template_fits(template: ChatTemplate, tokenizer: PreTrainedTokenizerBase) -> None:
    """Raise DataError if ``tokenizer`` cannot train ``template`` as it is prompted."""
    template.check_tokenizer(tokenizer)
    name = getattr(template, "name", type(template).__name__)
    rounds = _PROBE[:1] if template.single_turn else _PROBE
    messages = [
        Message(role, text) for pair in rounds for role, text in zip(("user", "assistant"), pair)
    ]
    try:
        trained = tokenize_conversation(template.render(messages), tokenizer, sample_id="probe")
    except DataError as exc:
        raise DataError(f"template {name!r} does not fit this tokenizer: {exc.message}",
                        hint=exc.hint) from exc
    labels = [IGNORE_INDEX, *trained.labels]
    starts = [
        position for position in range(len(trained.labels))
        if labels[position + 1] != IGNORE_INDEX and labels[position] == IGNORE_INDEX
    ]
    for index, (_, answer) in enumerate(rounds):
        prompt = tokenize_prompt(template.render_prompt(messages[: 2 * index + 1]), tokenizer)
        if trained.input_ids[: len(prompt)] != prompt or starts[index : index + 1] != [len(prompt)]:
            raise DataError(
                f"template {name!r} does not fit this tokenizer: for the answer {answer!r}, "
                f"generation starts after the prompt's {len(prompt)} tokens, but training "
                "tokenizes the text before that answer differently, so the model would learn "
                "token sequences it never sees when it answers",
                hint=_HINT,
            )
