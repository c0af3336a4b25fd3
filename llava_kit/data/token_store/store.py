"""Reading a built token store: flat memory-mapped columns, one row per loaded sample.

Nothing per sample is a Python object until it is asked for, so a training process, each
of its ranks and every DataLoader worker share one copy of the tokens in the page cache,
and a pickled store (a worker started by spawning) carries only its folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from llava_kit.constants import IGNORE_INDEX
from llava_kit.data.formats.problems import Problems
from llava_kit.data.token_store import columns
from llava_kit.data.token_store.build import KEY_FILE
from llava_kit.data.token_store.findings import FILE as FINDINGS_FILE
from llava_kit.data.token_store.findings import Findings


class TokenStore:
    """The tokens, images, ids and findings of one stage's data under one key."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        manifest = json.loads((folder / KEY_FILE).read_text(encoding="utf-8"))
        self.key: dict[str, Any] = manifest["key"]
        self.ids = columns.load_array(folder, "ids")
        self.trained = columns.load_array(folder, "trained")
        self.token_offsets = columns.load_array(folder, "token_offsets")
        self.image_offsets = columns.load_array(folder, "image_offsets")
        self.answer_text_before = columns.load_array(folder, "answer_text_before")
        self.answer_images_before = columns.load_array(folder, "answer_images_before")
        self.image_paths = columns.StringColumn(folder, "images")
        self.sample_ids = columns.StringColumn(folder, "sample_ids")
        self.origins = columns.StringColumn(folder, "origins")
        self._findings: Findings | None = None
        if int(manifest["samples"]) != len(self) or not self._consistent():
            raise ValueError(f"the columns of {folder} do not agree")

    @classmethod
    def open(cls, folder: Path) -> TokenStore | None:
        """The store at ``folder``; None when there is none or it cannot be read whole."""
        if not (folder / KEY_FILE).is_file():
            return None
        try:
            return cls(folder)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _consistent(self) -> bool:
        count = len(self)
        ragged = ((self.token_offsets, len(self.ids)), (self.image_offsets, len(self.image_paths)))
        if any(len(offsets) != count + 1 or offsets[-1] != total for offsets, total in ragged):
            return False
        per_sample = (self.answer_text_before, self.answer_images_before, self.origins)
        return (len(self.trained) == len(self.ids) and all(len(c) == count for c in per_sample)
                and bool(np.all(np.diff(self.token_offsets) >= 0))
                and (self.folder / FINDINGS_FILE).is_file())

    def __len__(self) -> int:
        return len(self.sample_ids)

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["folder"])  # type: ignore[misc]

    @property
    def findings(self) -> Findings:
        if self._findings is None:
            self._findings = Findings.load(self.folder)
        return self._findings

    def sample_id(self, index: int) -> str:
        return self.sample_ids[index]

    def origin(self, index: int) -> str:
        return self.origins[index]

    def tokens(self, index: int) -> tuple[list[int], list[int]]:
        """(input_ids, labels) of sample ``index``: labels are the ids of trained tokens."""
        start, stop = int(self.token_offsets[index]), int(self.token_offsets[index + 1])
        ids = self.ids[start:stop]
        labels = np.where(self.trained[start:stop].astype(bool), ids, IGNORE_INDEX)
        return ids.tolist(), labels.tolist()

    def images(self, index: int) -> tuple[Path, ...]:
        start, stop = int(self.image_offsets[index]), int(self.image_offsets[index + 1])
        return tuple(Path(self.image_paths[j]) for j in range(start, stop))

    def token_counts(self) -> np.ndarray:
        return np.diff(self.token_offsets)

    def image_counts(self) -> np.ndarray:
        return np.diff(self.image_offsets)

    def rows(self, skip: frozenset[str] | None = None) -> StoreRows:
        """The samples a stage trains on, in their order.

        Without ``skip`` every loaded sample is used, and records the reader dropped are an
        error (as reading the data without a store raises them); with it (on_bad_sample:
        skip) the later samples of a repeated id and the ids in ``skip`` are left out.
        Either way a chosen sample without tokens raises the error tokenizing it raises.
        """
        findings = self.findings
        later = {d.index for d in findings.duplicates if d.index is not None}
        if skip is None and findings.dropped:
            first = findings.dropped[0].source
            Problems(first, [p for p in findings.dropped if p.source == first]).raise_if_any()
        if skip is None or not (skip or later):
            chosen = np.arange(len(self), dtype=np.int64)
        else:
            chosen = np.fromiter(
                (i for i in range(len(self)) if i not in later and self.sample_id(i) not in skip),
                dtype=np.int64,
            )
        untokenized = np.fromiter(sorted(findings.tokens), dtype=np.int64, count=len(findings.tokens))
        used = untokenized[np.isin(untokenized, chosen)]
        if len(used):
            raise findings.tokens[int(used[0])].as_error()
        return StoreRows(self, chosen)


class StoreRows:
    """A selection of a store's samples, as the dataset reads them."""

    def __init__(self, store: TokenStore, rows: np.ndarray) -> None:
        self.store = store
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def sample_id(self, index: int) -> str:
        return self.store.sample_id(int(self.rows[index]))

    def tokens(self, index: int) -> tuple[list[int], list[int]]:
        return self.store.tokens(int(self.rows[index]))

    def images(self, index: int) -> tuple[Path, ...]:
        return self.store.images(int(self.rows[index]))

    def token_counts(self) -> np.ndarray:
        return self.store.token_counts()[self.rows]

    def image_counts(self) -> np.ndarray:
        return self.store.image_counts()[self.rows]

