"""Combining our ScienceQA answers with another model's, as in the LLaVA paper (sec. 5.2).

- ``complement``: take the other model's answer; where it gives none (its prediction index
  is -1 or the problem is missing from its results), take ours.
- ``judge``: where the two answers agree, keep them. Where they differ, ask a judge model
  again with the question, context, options and both answers and take the option it
  names last. The other model giving no answer is the complement case (ours is kept), and
  so is a judge reply that names no valid option: the paper falls back to our prediction
  whenever the other model fails to answer.

The other model's file is in the reference result layout: ``results`` {pid: index} and
optionally ``outputs`` {pid: text} (what the judge is shown).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from llava_kit.data.scienceqa_prompts import OPTION_LETTERS, context_text
from llava_kit.endpoints.client import ChatClient, ChatRequest, chat_messages
from llava_kit.errors import DataError
from llava_kit.evaluators.scienceqa_scoring import ScoredResult, score_indices
from llava_kit.json_io import read_json

CombineMode = Literal["complement", "judge"]
COMBINE_MODES: tuple[CombineMode, ...] = ("complement", "judge")

JUDGE_SYSTEM = (
    "You are an expert teacher checking answers to multiple-choice science questions. "
    "Think the question through on your own, then give the correct option."
)
# "The answer is B.", "answer is (B)", "Answer is: B"; a capital word ("Apple") is no letter.
_FINAL_LETTER = re.compile(r"[Aa]nswer is:?\s*\(?([A-Z])\b")


@dataclass
class OtherResults:
    results: dict[str, int]
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class Decision:
    """How one disputed problem was settled by the judge."""

    pid: str
    ours: int
    other: int
    judge_text: str | None
    judge_choice: int
    final: int
    error: str | None = None


@dataclass
class Combination:
    scored: ScoredResult
    mode: CombineMode
    decisions: list[Decision] = field(default_factory=list)
    from_other: int = 0  # problems whose final answer is the other model's

    @property
    def judge_failures(self) -> int:
        return sum(1 for d in self.decisions if d.judge_choice == -1)


def read_other(path: Path) -> OtherResults:
    """The other model's result file, checked: ``results`` must map pids to integers."""
    layout = (
        'a JSON object with "results": {pid: choice index (-1 for none)} and optional "outputs"'
    )
    if not Path(path).is_file():
        raise DataError(f"--combine file not found: {path}")
    data = read_json(Path(path), hint=layout)
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise DataError(f"{path}: no 'results' object", hint=layout)
    results: dict[str, int] = {}
    for pid, index in data["results"].items():
        if isinstance(index, bool) or not isinstance(index, int):
            raise DataError(
                f"{path}: results[{pid!r}] must be an integer, got {index!r}", hint=layout
            )
        results[str(pid)] = index
    outputs = data.get("outputs", {})
    if not isinstance(outputs, dict) or not all(isinstance(t, str) for t in outputs.values()):
        raise DataError(f"{path}: 'outputs' must map pids to strings", hint=layout)
    return OtherResults(results, {str(pid): text for pid, text in outputs.items()})


def complement(
    ours: ScoredResult, other: OtherResults, problems: Mapping[str, Mapping[str, Any]]
) -> Combination:
    final: dict[str, int] = {}
    outputs: dict[str, str] = {}
    taken = 0
    for pid in problems:
        theirs = _valid(other.results.get(pid, -1), problems[pid])
        if theirs != -1:
            final[pid], taken = theirs, taken + 1
            outputs[pid] = other.outputs.get(pid, f"The answer is {OPTION_LETTERS[theirs]}.")
        else:
            final[pid] = ours.results[pid]
            outputs[pid] = ours.outputs.get(pid, "")
    return Combination(score_indices(final, outputs, problems), "complement", from_other=taken)


def judge(
    ours: ScoredResult,
    other: OtherResults,
    problems: Mapping[str, Mapping[str, Any]],
    raw_problems: Mapping[str, Mapping[str, Any]],
    client: ChatClient,
    params: Mapping[str, Any] | None = None,
) -> Combination:
    """Settle every disagreement through the judge (requests run concurrently, cached)."""
    base = complement(ours, other, problems)
    final, outputs = dict(base.scored.results), dict(base.scored.outputs)
    disputed = [
        pid
        for pid in problems
        if _valid(other.results.get(pid, -1), problems[pid]) not in (-1, ours.results[pid])
    ]
    requests = [
        ChatRequest(
            id=pid,
            messages=judge_messages(
                raw_problems[pid], ours.outputs.get(pid, ""), _other_text(other, pid)
            ),
            params=dict(params or {}),
        )
        for pid in disputed
    ]
    replies = client.complete_many(requests)
    decisions: list[Decision] = []
    for pid in disputed:
        reply = replies[pid]
        choice = (
            -1 if reply.text is None else final_choice(reply.text, len(problems[pid]["choices"]))
        )
        final[pid] = choice if choice != -1 else ours.results[pid]
        outputs[pid] = reply.text if choice != -1 and reply.text else ours.outputs.get(pid, "")
        decisions.append(
            Decision(
                pid,
                ours.results[pid],
                other.results[pid],
                reply.text,
                choice,
                final[pid],
                reply.error,
            )
        )
    from_other = sum(
        1
        for pid in problems
        if final[pid] == _valid(other.results.get(pid, -1), problems[pid]) != ours.results[pid]
    )
    return Combination(score_indices(final, outputs, problems), "judge", decisions, from_other)


def judge_messages(problem: Mapping[str, Any], ours: str, theirs: str) -> list[dict[str, str]]:
    """The judge's question: the problem, both answers, and the required last line."""
    options = " ".join(f"({OPTION_LETTERS[i]}) {c}" for i, c in enumerate(problem["choices"]))
    prompt = (
        f"Question: {problem['question']}\n"
        f"Context: {context_text(dict(problem), use_caption=False)}\n"
        f"Options: {options}\n\n"
        f"Two students answered this question and disagree.\n\n"
        f"Student 1:\n{ours.strip() or '(no answer)'}\n\n"
        f"Student 2:\n{theirs.strip() or '(no answer)'}\n\n"
        "Weigh both answers, decide which option is correct, and finish your reply with "
        "a last line of the form 'The answer is X.', where X is the option's letter."
    )
    return chat_messages(JUDGE_SYSTEM, [("user", prompt)])


def final_choice(text: str, choice_count: int) -> int:
    """The option the judge names last ('The answer is X', or a lone letter); -1 if none."""
    found = _FINAL_LETTER.findall(text)
    stripped = text.strip().rstrip(".")
    letter = found[-1] if found else (stripped if len(stripped) == 1 else None)
    if letter is None or letter not in OPTION_LETTERS:
        return -1
    index = OPTION_LETTERS.index(letter)
    return index if index < choice_count else -1


def _other_text(other: OtherResults, pid: str) -> str:
    index = other.results[pid]
    return other.outputs.get(pid) or f"The answer is {OPTION_LETTERS[index]}."


def _valid(index: int, problem: Mapping[str, Any]) -> int:
    return index if 0 <= index < min(len(problem["choices"]), len(OPTION_LETTERS)) else -1
