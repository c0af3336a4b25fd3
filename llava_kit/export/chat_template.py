"""Our round-based chat templates (all but plain) written as a Jinja chat template.

transformers' processors render ``messages`` (content a string, or a list of
``{"type": "image"}`` / ``{"type": "text", "text": ...}`` items) with a Jinja template.
The one built here renders the conversation as ``template.render_prompt`` does, images
placed as ``model.image_position`` places them; ``matching_chat_template`` then checks
that the exported tokenizer turns that text into exactly the token ids training used,
so the exported model is prompted as it was trained. BOS is left to the tokenizer.
"""

from __future__ import annotations

import json

from transformers import PreTrainedTokenizerBase

from llava_kit.constants import IMAGE_PLACEHOLDER, IMAGE_TOKEN_ID
from llava_kit.templates.base import ChatTemplate, Message
from llava_kit.templates.tokenize import tokenize_prompt

# The class attributes a round-based template (templates/rounds.py) is made of.
ROUND_FIELDS = (
    "header", "first_user_prefix", "user_prefix", "user_suffix", "assistant_role",
    "answer_prefix", "answer_suffix",
)

_JINJA = """\
{%- set ns = namespace(round=0) -%}
{{- HEADER -}}
{%- for message in messages -%}
{%- if message['content'] is string -%}
{%- set text = message['content'] -%}{%- set images = 0 -%}
{%- else -%}
{%- set text = message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('') -%}
{%- set images = message['content'] | selectattr('type', 'equalto', 'image') | list | length -%}
{%- endif -%}
{%- if message['role'] == 'user' -%}
{%- set markers = ([IMAGE + IMAGE_SUFFIX] * images) | join('\\n') -%}
{%- if images == 0 -%}{%- set body = text -%}
{%- elif text | trim == '' -%}{%- set body = markers -%}
{%- elif IMAGE_FIRST -%}{%- set body = markers + '\\n' + text | trim -%}
{%- else -%}{%- set body = text | trim + '\\n' + markers -%}
{%- endif -%}
{{- (FIRST_USER_PREFIX if ns.round == 0 else USER_PREFIX) + body + USER_SUFFIX + ASSISTANT_ROLE -}}
{%- elif message['role'] == 'assistant' -%}
{{- ANSWER_PREFIX + text + ANSWER_SUFFIX -}}
{%- set ns.round = ns.round + 1 -%}
{%- else -%}
{{- raise_exception('this model was trained with user and assistant turns only, not ' + message['role']) -}}
{%- endif -%}
{%- endfor -%}
"""
# Candidate image suffixes, tried in order until HF's tokenization equals training's.
IMAGE_SUFFIXES = ("", " ")


def jinja_chat_template(
    template: ChatTemplate, image_position: str, image_suffix: str = ""
) -> str | None:
    """The Jinja equivalent of ``template``, or None for a template that is not round-based
    (``plain`` drops the question, which a chat template cannot express usefully).

    ``image_suffix`` follows every image marker: training tokenizes the text after an
    image on its own, which for SentencePiece-style tokenizers starts it with a word
    boundary ("▁") that tokenizing the whole text would not produce; a space there
    restores it.
    """
    if not all(hasattr(template, field) for field in ROUND_FIELDS):
        return None
    values: dict[str, str | bool] = {field.upper(): getattr(template, field) for field in ROUND_FIELDS}
    values["IMAGE"] = IMAGE_PLACEHOLDER
    values["IMAGE_SUFFIX"] = image_suffix
    # "random" placement cannot be reproduced by a fixed template; the reference order is used.
    values["IMAGE_FIRST"] = image_position != "question_first"
    header = "".join(
        f"{{%- set {name} = {_literal(value)} -%}}\n" for name, value in values.items()
    )
    return header + _JINJA


def _literal(value: str | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    # A JSON string is also a valid Jinja string literal (same escapes for \\, " and \n).
    return json.dumps(value, ensure_ascii=False)


def matching_chat_template(
    template: ChatTemplate,
    image_position: str,
    training_tokenizer: PreTrainedTokenizerBase,
    hf_tokenizer: PreTrainedTokenizerBase,
    image_id: int,
) -> str | None:
    """A Jinja template whose text ``hf_tokenizer`` turns into exactly the token ids training
    gives (one ``image_id`` per image), checked on a two-round probe; None if none does."""
    candidates = [jinja_chat_template(template, image_position, suffix) for suffix in IMAGE_SUFFIXES]
    if candidates[0] is None:
        return None
    image_first = image_position != "question_first"
    question = "What is in the picture?"
    first = f"{IMAGE_PLACEHOLDER}\n{question}" if image_first else f"{question}\n{IMAGE_PLACEHOLDER}"
    ours = [Message("user", first), Message("assistant", "A red square."), Message("user", "Why?")]
    expected = [
        image_id if token == IMAGE_TOKEN_ID else token
        for token in tokenize_prompt(template.render_prompt(ours), training_tokenizer)
    ]
    theirs = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]},
        {"role": "assistant", "content": "A red square."},
        {"role": "user", "content": "Why?"},
    ]
    for jinja in candidates:
        text = hf_tokenizer.apply_chat_template(
            theirs, chat_template=jinja, tokenize=False, add_generation_prompt=True
        )
        if hf_tokenizer(text)["input_ids"] == expected:
            return jinja
    return None
