"""ScienceQA prompt formats: one problem -> the question text and the answer text a model sees.

A prompt format is "INPUT-OUTPUT", e.g. "QCM-LEA" (the LLaVA ScienceQA default). The letters
name the pieces: Q question, C context (hint, plus the image caption when asked), M options
(multiple choice), L lecture, E explanation (the problem's ``solution``), A answer.

The text reproduces the reference conversion used to train LLaVA on ScienceQA
(haotian-liu/LLaVA scripts/convert_sqa_to_llava_base_prompt.py, chatbot variant, plus the
prefix stripping of scripts/convert_sqa_to_llava.py) character for character, quirks
included, because a model evaluated with a prompt that differs from its training prompt loses
accuracy (the reference tracker's most common "cannot reproduce" report):

- only the first run of doubled spaces is collapsed (one ``str.replace("  ", " ")`` pass), so
  an empty lecture and solution in LEA leave a leading space on the answer;
- a text ending in an empty ``BECAUSE:`` loses every ``BECAUSE:`` it contains;
- the leading "Question: " / "Answer: " labels are removed by replacing every occurrence,
  not only the first;
- the AL output explains with the solution and AE with the lecture (the reference's naming);
- a literal backslash-n in a lecture or solution becomes a real line break.

Renderers expect a problem already checked by the scienceqa reader (answer within choices,
at most five choices).
"""

from __future__ import annotations

from typing import Any

from llava_kit.errors import DataError

# The option letters prompts show and scorers read back; the reader allows one per choice.
OPTION_LETTERS = "ABCDE"

# Field names: q question, c context, m options, l lecture, e solution, a answer letter.
_INPUTS: dict[str, str] = {
    "QCM": "Question: {q}\nContext: {c}\nOptions: {m}\n",
    "CQM": "Context: {c}\nQuestion: {q}\nOptions: {m}\n",
    "QCML": "Question: {q}\nContext: {c}\nOptions: {m}\nBECAUSE: {l}\n",
    "QCME": "Question: {q}\nContext: {c}\nOptions: {m}\nBECAUSE: {e}\n",
    "QCMLE": "Question: {q}\nContext: {c}\nOptions: {m}\nBECAUSE: {l} {e}\n",
    "QCLM": "Question: {q}\nContext: {c}\nBECAUSE: {l}\nOptions: {m}\n",
    "QCEM": "Question: {q}\nContext: {c}\nBECAUSE: {e}\nOptions: {m}\n",
    "QCLEM": "Question: {q}\nContext: {c}\nBECAUSE: {l} {e}\nOptions: {m}\n",
}
_OUTPUTS: dict[str, str] = {
    "A": "Answer: The answer is {a}.",
    "AL": "Answer: The answer is {a}. BECAUSE: {e}",
    "AE": "Answer: The answer is {a}. BECAUSE: {l}",
    "ALE": "Answer: The answer is {a}. BECAUSE: {l} {e}",
    "AEL": "Answer: The answer is {a}. BECAUSE: {e} {l}",
    "LA": "Answer: {l} The answer is {a}.",
    "EA": "Answer: {e} The answer is {a}.",
    "LEA": "Answer: {l} {e} The answer is {a}.",
    "ELA": "Answer: {e} {l} The answer is {a}.",
}
# LEPA (the original LLaVA v0 ScienceQA output) drops empty sections, so it is built, not filled.
_OUTPUT_NAMES = [*_OUTPUTS, "LEPA"]


def format_names() -> tuple[list[str], list[str]]:
    """The valid input parts and output parts of a prompt format."""
    return list(_INPUTS), list(_OUTPUT_NAMES)


def parse_prompt_format(prompt_format: str) -> tuple[str, str]:
    """Split "QCM-LEA" into ("QCM", "LEA"); DataError listing the valid parts otherwise."""
    parts = prompt_format.split("-")
    if len(parts) == 2 and parts[0] in _INPUTS and parts[1] in _OUTPUT_NAMES:
        return parts[0], parts[1]
    inputs, outputs = format_names()
    raise DataError(
        f"unknown ScienceQA prompt format {prompt_format!r}",
        hint=(
            "write it as INPUT-OUTPUT, e.g. QCM-LEA; inputs: " + ", ".join(inputs)
            + "; outputs: " + ", ".join(outputs)
        ),
    )


def render_input(problem: dict[str, Any], fmt: str, use_caption: bool) -> str:
    """The user-turn text for input format ``fmt`` (e.g. "QCM"), without any image marker."""
    template = _INPUTS.get(fmt)
    if template is None:
        raise _unknown_part("input", fmt, list(_INPUTS))
    text = _clean(template.format(**_fields(problem, use_caption)))
    return _drop_label(text, "Question: ")


def render_output(problem: dict[str, Any], fmt: str) -> str:
    """The assistant-turn text for output format ``fmt`` (e.g. "LEA")."""
    fields = _fields(problem, use_caption=False)
    if fmt == "LEPA":
        text = _lepa(fields)
    elif fmt in _OUTPUTS:
        text = _OUTPUTS[fmt].format(**fields)
    else:
        raise _unknown_part("output", fmt, _OUTPUT_NAMES)
    return _drop_label(_clean(text), "Answer: ")


def problem_meta(problem: dict[str, Any]) -> dict[str, Any]:
    """What scoring needs from a problems.json record: subject, grade, the benchmark's
    TXT / IMG / NO categories (ScienceQA tools/evaluate_acc.py), answer and choices."""
    return {
        "subject": problem.get("subject"),
        "grade": problem.get("grade"),
        "has_text_context": bool(problem.get("hint")),
        "has_image": bool(problem.get("image")),
        "answer": problem["answer"],
        "choices": list(problem["choices"]),
    }


def answer_letter(problem: dict[str, Any]) -> str:
    return OPTION_LETTERS[problem["answer"]]


def context_text(problem: dict[str, Any], use_caption: bool) -> str:
    """The hint, followed by the image caption when asked; "N/A" when both are empty."""
    caption = problem.get("caption", "") if use_caption else ""
    context = " ".join([problem.get("hint") or "", caption]).strip()
    return context or "N/A"


def _fields(problem: dict[str, Any], use_caption: bool) -> dict[str, str]:
    options = " ".join(
        f"({OPTION_LETTERS[index]}) {choice}" for index, choice in enumerate(problem["choices"])
    )
    return {
        "q": problem["question"],
        "c": context_text(problem, use_caption),
        "m": options,
        "l": _multiline(problem.get("lecture") or ""),
        "e": _multiline(problem.get("solution") or ""),
        "a": answer_letter(problem),
    }


def _multiline(text: str) -> str:
    # The reference escapes real newlines and later unescapes every "\n" sequence, so the only
    # net change is that a literal backslash-n becomes a line break.
    return text.replace("\\n", "\n")


def _lepa(fields: dict[str, str]) -> str:
    text = ""
    if fields["l"].strip():
        text += f"LECTURE: {fields['l']}\n"
    if fields["e"].strip():
        text += f"SOLUTION: {fields['e']}\n"
    return text + f"###\nANSWER: {fields['a']}."


def _clean(text: str) -> str:
    text = text.replace("  ", " ").strip()
    if text.endswith("BECAUSE:"):
        text = text.replace("BECAUSE:", "").strip()
    return text


def _drop_label(text: str, label: str) -> str:
    return text.replace(label, "") if text.startswith(label) else text


def _unknown_part(kind: str, name: str, valid: list[str]) -> DataError:
    return DataError(
        f"unknown ScienceQA {kind} format {name!r}",
        hint=f"valid {kind} formats: {', '.join(valid)}",
    )
