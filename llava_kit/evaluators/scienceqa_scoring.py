"""ScienceQA scoring: answer extraction, accuracy and the benchmark's per-category table.

Pure functions (no torch), so that prediction files from any source can be scored.

Answer extraction follows the reference scorer (haotian-liu/LLaVA
llava/eval/eval_science_qa.py), rule by rule, on the stripped output:

1. the whole output is one of the letters A-E -> that letter;
2. the output starts with a letter A-E followed by ". " -> that letter;
3. the regular expression ``The answer is ([A-Z]).`` matches exactly once -> its letter
   (the final ``.`` is the reference's unescaped dot: any character, so "The answer is A"
   at the very end of the output does not match; two matches are ambiguous and fail);
4. otherwise the answer failed.

A letter that names no choice of the problem (e.g. "D" with three choices) maps to -1,
as the reference's ``get_pred_idx`` does in its final version (earlier versions drew a
random choice instead, which made scores irreproducible). Failed answers count as wrong.

The reference strips model outputs before writing them, so stripping here changes
nothing for its prediction files and makes rule 1 robust to stray whitespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from llava_kit.data.scienceqa_prompts import OPTION_LETTERS

_ANSWER_PATTERN = re.compile(r"The answer is ([A-Z]).")

CATEGORIES: tuple[str, ...] = ("NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12", "Avg")
_SUBJECTS = {"NAT": "natural science", "SOC": "social science", "LAN": "language science"}
_LOWER_GRADES = frozenset(f"grade{n}" for n in range(1, 7))
_UPPER_GRADES = frozenset(f"grade{n}" for n in range(7, 13))

# The LLaVA paper's ScienceQA table (test set, accuracy %), for reports.
PAPER_ROWS: dict[str, dict[str, float]] = {
    name: dict(zip(CATEGORIES, scores))
    for name, scores in {
        "Human": (90.23, 84.97, 87.48, 89.60, 87.50, 88.10, 91.59, 82.42, 88.40),
        "GPT-3.5 w/ CoT": (75.44, 70.87, 78.09, 74.68, 67.43, 79.93, 78.23, 69.68, 75.17),
        "MM-CoT Large": (95.91, 82.00, 90.82, 95.26, 88.80, 92.89, 92.44, 90.31, 91.68),
        "GPT-4 (text only)": (84.06, 73.45, 87.36, 81.87, 70.75, 90.73, 84.69, 79.10, 82.69),
        "LLaVA": (90.36, 95.95, 88.00, 89.49, 88.00, 90.66, 90.93, 90.90, 90.92),
        "LLaVA+GPT-4 (complement)": (
            90.36, 95.50, 88.55, 89.05, 87.80, 91.08, 92.22, 88.73, 90.97,
        ),
        "LLaVA+GPT-4 (judge)": (91.56, 96.74, 91.09, 90.62, 88.99, 93.52, 92.73, 92.16, 92.53),
    }.items()
}

CategoryTable = dict[str, float | None]


def extract_answer(text: str, choices: list[str]) -> int:
    """The choice index a model output names, or -1 when no rule finds a valid letter."""
    output = text.strip()
    letter: str | None = None
    if len(output) == 1 and output in OPTION_LETTERS:
        letter = output
    elif len(output) >= 3 and output[0] in OPTION_LETTERS and output[1:3] == ". ":
        letter = output[0]
    else:
        found = _ANSWER_PATTERN.findall(output)
        if len(found) == 1:
            letter = found[0]
    if letter is None:
        return -1
    index = ord(letter) - ord("A")
    return index if index < min(len(choices), len(OPTION_LETTERS)) else -1



def category_table(
    results: Mapping[str, bool], problems: Mapping[str, Mapping[str, Any]]
) -> CategoryTable:
    """Accuracy (%) per ScienceQA category over the scored pids; None for an empty category.

    Definitions of ScienceQA's tools/evaluate_acc.py: NAT/SOC/LAN by subject, TXT has a
    non-empty hint, IMG has an image, NO has neither, G1-6 / G7-12 by grade, Avg over all.
    """
    members: dict[str, list[bool]] = {name: [] for name in CATEGORIES}
    for pid, correct in results.items():
        meta = problems[pid]
        for name in _categories_of(meta):
            members[name].append(correct)
    return {
        name: (100.0 * sum(marks) / len(marks) if marks else None)
        for name, marks in members.items()
    }


def _categories_of(meta: Mapping[str, Any]) -> list[str]:
    names = [name for name, subject in _SUBJECTS.items() if meta.get("subject") == subject]
    has_text, has_image = bool(meta.get("has_text_context")), bool(meta.get("has_image"))
    if has_text:
        names.append("TXT")
    if has_image:
        names.append("IMG")
    if not has_text and not has_image:
        names.append("NO")
    grade = meta.get("grade")
    if grade in _LOWER_GRADES:
        names.append("G1-6")
    elif grade in _UPPER_GRADES:
        names.append("G7-12")
    names.append("Avg")
    return names


@dataclass
class ScoredResult:
    """Scores of one prediction set; ``to_json`` is the reference's result-file layout."""

    acc: float
    correct: int
    count: int
    results: dict[str, int]
    outputs: dict[str, str]
    table: CategoryTable
    # Problems without a prediction: scored as failed (-1), as the reference does.
    missing: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Problems whose output named no valid choice (missing ones included)."""
        return sum(1 for index in self.results.values() if index == -1)

    def to_json(self) -> dict[str, Any]:
        return {
            "acc": self.acc,
            "correct": self.correct,
            "count": self.count,
            "results": self.results,
            "outputs": self.outputs,
        }


def score_predictions(
    predictions: Mapping[str, str], problems: Mapping[str, Mapping[str, Any]]
) -> ScoredResult:
    """Score every problem in ``problems`` (pid -> meta with answer and choices).

    A problem without a prediction counts as failed; predictions for pids outside
    ``problems`` are ignored, as in the reference (callers that read files check them).
    """
    if not problems:
        raise ValueError("no problems to score")
    results: dict[str, int] = {}
    outputs: dict[str, str] = {}
    missing: list[str] = []
    for pid, meta in problems.items():
        text = predictions.get(pid)
        if text is None:
            missing.append(pid)
            results[pid] = -1
            continue
        outputs[pid] = text
        results[pid] = extract_answer(text, meta["choices"])
    return score_indices(results, outputs, problems, missing=missing)


def score_indices(
    chosen: Mapping[str, int],
    outputs: dict[str, str],
    problems: Mapping[str, Mapping[str, Any]],
    missing: list[str] | None = None,
) -> ScoredResult:
    """Score predicted option indices (a pid missing from ``chosen`` counts as no answer)."""
    results = {pid: chosen.get(pid, -1) for pid in problems}
    marks = {pid: results[pid] == problems[pid]["answer"] for pid in problems}
    correct = sum(marks.values())
    return ScoredResult(
        acc=100.0 * correct / len(marks),
        correct=correct,
        count=len(marks),
        results=results,
        outputs=outputs,
        table=category_table(marks, problems),
        missing=missing or [],
    )


def format_score(value: float | None) -> str:
    """A percentage as the benchmark prints it (two decimals); "-" for an empty category."""
    return "-" if value is None else f"{value:.2f}"
