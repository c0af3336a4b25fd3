"""Checking a stage's data from its token store: what the build found, read back instead of
reading and tokenizing the data again, plus what can change without the data files
changing (an image deleted or corrupted since, the budget of model.max_length).

The problems come out in the order, and with the words, of checking the loaded samples
one by one (``samples.check_sample``), so the report is the same either way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llava_kit.data.token_store import TokenStore
from llava_kit.datacheck.decode import undecodable_images
from llava_kit.datacheck.reading import report_reading
from llava_kit.datacheck.report import CheckReport
from llava_kit.datacheck.samples import TokenBudget, check_image, truncation_message


def check_stored(
    store: TokenStore, where: str, source: str, report: CheckReport, decode: bool,
    budget: TokenBudget,
) -> None:
    findings = store.findings
    repeated = report_reading(report, where, source, findings.dropped, findings.unknown,
                              findings.duplicates)
    report.samples[where] += len(store)
    paths = [store.image_paths[j] for j in range(len(store.image_paths))]
    images = [Path(path) for path in dict.fromkeys(paths)]
    unreadable = undecodable_images(images, where) if decode and images else {}
    bad_images = {str(path) for path in images if not path.is_file() or path in unreadable}
    no_answer = {i for i, found in findings.text.items() if any(k == "no_answer" for k, _ in found)}
    truncated = set(_truncated(store, budget).tolist())
    with_image_problems = np.searchsorted(
        store.image_offsets, [j for j, path in enumerate(paths) if path in bad_images],
        side="right",
    ) - 1
    flagged = sorted(
        set(findings.text) | set(findings.tokens) | truncated
        | set(with_image_problems.tolist())
    )
    for index in flagged:
        sample_id, record = store.sample_id(index), store.origin(index)

        def add(kind: str, message: str) -> None:
            report.add(kind, where, source, sample_id, message, record=record,
                       drop_by_id=index not in repeated)

        for kind, message in findings.text.get(index, []):
            add(kind, message)
        for path in store.images(index):
            check_image(path, add, unreadable)
        if index in no_answer:
            continue  # without an answer there is nothing to tokenize (check_sample's rule)
        problem = findings.tokens.get(index)
        if problem is not None:
            add(problem.kind, problem.message)
        elif index in truncated and budget.visual_tokens is not None:
            add("truncated", truncation_message(
                int(store.answer_text_before[index])
                + int(store.answer_images_before[index]) * budget.visual_tokens,
                budget.visual_tokens, budget.max_length,
            ))


def _truncated(store: TokenStore, budget: TokenBudget) -> np.ndarray:
    """Samples whose first answer token lies at or past model.max_length."""
    if budget.visual_tokens is None:
        return np.zeros(0, dtype=np.int64)
    position = (store.answer_text_before.astype(np.int64)
                + store.answer_images_before.astype(np.int64) * budget.visual_tokens)
    tokenized = store.token_counts() > 0
    return np.flatnonzero(tokenized & (position >= budget.max_length))
