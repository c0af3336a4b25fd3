"""Reading ScienceQA predictions to score: answer JSONL files and the reference's result file.

Two layouts are accepted:

- answer JSONL, one ``{"question_id" (or "pid"), "text", ...}`` object per line: what
  ``llava-kit eval scienceqa --run`` writes and the reference's model_vqa_science.py
  writes (its ``prompt``, ``answer_id``, ``model_id`` and ``metadata`` are ignored);
- the reference scorer's result file (eval_science_qa.py ``--output-result``): one JSON
  object ``{"acc", "correct", "count", "results", "outputs"}`` whose ``outputs`` maps every
  problem id to the model's text (``"FAILED"`` where it had none). The texts are scored
  again; the file's own ``acc`` and ``results`` are not trusted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llava_kit.errors import DataError
from llava_kit.json_io import parse_json, read_text

_RESULT_KEYS = frozenset({"acc", "correct", "count", "results", "outputs"})


def read_predictions(path: Path) -> dict[str, str]:
    """pid -> output text; DataError naming the line or key for any bad record."""
    if not path.is_file():
        raise DataError(f"prediction file not found: {path}")
    text = read_text(path)
    result = _result_file(text)
    if result is not None:
        return _result_outputs(path, result)
    return _answer_lines(path, text)


def _result_file(text: str) -> dict[str, Any] | None:
    """The reference's result object, or None when ``text`` is not one."""
    try:
        whole = parse_json(text, "predictions")
    except DataError:
        return None  # JSONL with more than one line, or broken JSON reported line by line
    if isinstance(whole, dict) and _RESULT_KEYS <= set(whole):
        return whole
    return None


def _result_outputs(path: Path, result: dict[str, Any]) -> dict[str, str]:
    outputs = result["outputs"]
    layout = "the reference's result file maps each problem id to its text under 'outputs'"
    if not isinstance(outputs, dict):
        raise DataError(f"{path}: 'outputs' must be a JSON object", hint=layout)
    bad = [pid for pid, text in outputs.items() if not isinstance(text, str)]
    if bad:
        raise DataError(f"{path}: outputs[{bad[0]!r}] must be a string", hint=layout)
    return dict(outputs)


def _answer_lines(path: Path, text: str) -> dict[str, str]:
    texts: dict[str, str] = {}
    # Split on newlines only: JSON text may hold other line separators (U+2028) unescaped.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        pid, answer = _prediction_record(path, number, line)
        if pid in texts:
            raise DataError(
                f"{path}:{number}: id {pid!r} appears a second time",
                hint="keep one prediction per problem",
            )
        texts[pid] = answer
    return texts


def _prediction_record(path: Path, number: int, line: str) -> tuple[str, str]:
    where = f"{path}:{number}"
    layout = 'each line must be a JSON object like {"question_id": "5", "text": "The answer is A."}'
    record = parse_json(line, where, hint=layout, column_only=True)
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object", hint=layout)
    pid = record.get("question_id", record.get("pid"))
    if not isinstance(pid, (str, int)) or isinstance(pid, bool):
        raise DataError(f"{where}: no 'question_id' (or 'pid') string", hint=layout)
    answer = record.get("text")
    if not isinstance(answer, str):
        raise DataError(f"{where}: 'text' must be a string", hint=layout)
    return str(pid), answer
