"""What a token store is keyed by: everything that decides the tokens of a stage's data.

The content of the data files (SHA-256), the data format with its options, the chat
template with its options, the tokenizer (its saved files: vocabulary, merges, special
tokens, chat template, settings), where images go in the first turn (and the seed, when
that is drawn), and the versions of llava-kit and of the store layout. Changing any of
them gives another key, so a store is never read for tokens it does not hold.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

import llava_kit
from llava_kit.data.sample_tokens import Placement
from llava_kit.digests import file_sha256

# Bumped whenever the files of a store change meaning.
STORE_LAYOUT = 1
# (path, size, mtime, inode) -> digest: the check and the dataset of one run hash once.
_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def file_signature(path: Path) -> tuple[str, int, int, int]:
    """What changes whenever a file is rewritten (checked again before a store is published)."""
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino


def content_digest(path: Path) -> str:
    signature = file_signature(path)
    if signature not in _DIGESTS:
        _DIGESTS[signature] = file_sha256(path)
    return _DIGESTS[signature]


class UnkeyableTokenizer(Exception):
    """The tokenizer cannot save itself, so nothing can tell two of them apart."""


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A digest of the tokenizer as it saves itself, and of its class."""
    digest = hashlib.sha256(f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}".encode())
    with tempfile.TemporaryDirectory(prefix="llava-kit-tokenizer-") as folder:
        try:
            tokenizer.save_pretrained(folder)
        except (NotImplementedError, AttributeError, TypeError, ValueError) as exc:
            raise UnkeyableTokenizer(str(exc)) from exc
        for path in sorted(Path(folder).rglob("*")):
            if path.is_file():
                digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
                digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def store_key(
    data: tuple[str, dict[str, Any]], files: list[Path], template: tuple[str, dict[str, Any]],
    tokenizer: PreTrainedTokenizerBase, placement: Placement,
) -> dict[str, Any]:
    """The key as plain values (saved beside the store for people to read)."""
    name, options = data
    return {
        "layout": STORE_LAYOUT,
        "llava_kit": llava_kit.__version__,
        "data_format": name,
        "options": _absolute_paths(options),
        "files": [[str(path.resolve()), content_digest(path)] for path in files],
        "template": [template[0], template[1]],
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "image_position": placement.image_position,
        # Only a random placement draws from the seed; other seeds give the same tokens.
        "seed": placement.seed if placement.image_position == "random" else None,
    }


def key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def _absolute_paths(value: Any) -> Any:
    """Options with relative paths made absolute: the same words from another working
    directory name other files (and other images)."""
    if isinstance(value, dict):
        return {key: _absolute_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_absolute_paths(item) for item in value]
    if isinstance(value, str) and value and not os.path.isabs(value) and os.path.exists(value):
        return os.path.abspath(value)
    return value
