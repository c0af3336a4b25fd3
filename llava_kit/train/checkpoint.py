"""Checkpoints that survive a crash at any moment, exact RNG state, and strict connector files.

A checkpoint is a directory written under a temporary name, finished with a ``COMPLETE``
marker and only then renamed into place, so a directory named ``step-XXXXXXXX`` with a
marker is always whole. Weights are safetensors; the optimizer state is a torch pickle
restricted to plain containers and tensors (``weights_only=True`` on load); the trainer
state is JSON.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from llava_kit.errors import LlavaKitError, ModelError
from llava_kit.train.run_dir import atomic_output, fsync_directory, fsync_file

try:
    import numpy
except ImportError:  # numpy is optional for torch; its RNG is then simply not part of the state
    numpy = None  # type: ignore[assignment]

logger = logging.getLogger("llava_kit")

COMPLETE_MARKER = "COMPLETE"
WEIGHTS_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
TRAINER_STATE_FILE = "trainer_state.json"
CONNECTOR_META_KEY = "llava_kit.connector"

_STEP_DIR = re.compile(r"^step-(\d{8,})$")
_LEFTOVER = re.compile(r"\.(tmp|old)-\d+$")
_MAX_LISTED = 8  # per kind of key problem, so a mismatch message stays on one screen


# ------------------------------------------------------------------------------ RNG state
def capture_rng_state() -> dict[str, Any]:
    """Python, numpy, torch CPU and current-CUDA-device RNG states, as JSON-safe values."""
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "torch": _encode_bytes(torch.get_rng_state()),
    }
    if numpy is not None:
        name, keys, position, has_gauss, cached_gaussian = numpy.random.get_state()
        state["numpy"] = {
            "name": name,
            "keys": keys.tolist(),
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        }
    # Only the current device: asking for every device would create a CUDA context on each
    # GPU from every rank.
    if torch.cuda.is_available():
        state["cuda"] = _encode_bytes(torch.cuda.get_rng_state(torch.cuda.current_device()))
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Puts back what ``capture_rng_state`` returned; the following draws repeat exactly."""
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))
    torch.set_rng_state(_decode_bytes(state["torch"]))
    if "numpy" in state:
        if numpy is None:
            logger.warning("the checkpoint holds a numpy RNG state but numpy is not installed")
        else:
            saved = state["numpy"]
            numpy.random.set_state(
                (
                    saved["name"],
                    numpy.asarray(saved["keys"], dtype=numpy.uint32),
                    saved["pos"],
                    saved["has_gauss"],
                    saved["cached_gaussian"],
                )
            )
    if "cuda" in state:
        if torch.cuda.is_available():
            torch.cuda.set_rng_state(_decode_bytes(state["cuda"]), torch.cuda.current_device())
        else:
            logger.warning(
                "the checkpoint holds a CUDA RNG state but CUDA is not available; not restored"
            )


def _encode_bytes(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.numpy().tobytes()).decode("ascii")


def _decode_bytes(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


# ---------------------------------------------------------------------------- checkpoints
@dataclass
class LoadedCheckpoint:
    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    trainer_state: dict[str, Any]


def step_checkpoint_dir(stage_dir: Path, step: int) -> Path:
    """stage_dir/step-00000120: zero-padded so names sort in step order."""
    return stage_dir / f"step-{step:08d}"


def save_checkpoint(
    directory: Path,
    *,
    weights: dict[str, torch.Tensor],
    optimizer: dict[str, Any] | None,
    trainer_state: dict[str, Any],
    write_extra: Callable[[Path], None] | None = None,
) -> Path:
    """Writes a whole checkpoint at ``directory``, replacing an older one there atomically.

    ``write_extra(temp_dir)`` may add more files; it runs before the marker, so those files
    are covered by the same all-or-nothing guarantee.
    """
    temp = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
    if temp.exists():
        shutil.rmtree(temp)
    temp.mkdir(parents=True)
    try:
        save_file(storable_tensors(weights), temp / WEIGHTS_FILE, metadata={"format": "pt"})
        fsync_file(temp / WEIGHTS_FILE)
        if optimizer is not None:
            torch.save(optimizer, temp / OPTIMIZER_FILE)
            fsync_file(temp / OPTIMIZER_FILE)
        _write_synced(temp / TRAINER_STATE_FILE, json.dumps(trainer_state, indent=2) + "\n")
        if write_extra is not None:
            write_extra(temp)
        _write_synced(temp / COMPLETE_MARKER, "complete\n")
        fsync_directory(temp)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    _publish(temp, directory)
    return directory


def _publish(temp: Path, directory: Path) -> None:
    """Directories cannot be renamed over non-empty ones: move the old aside, then drop it."""
    old = directory.with_name(f"{directory.name}.old-{os.getpid()}")
    if directory.exists():
        if old.exists():
            shutil.rmtree(old)
        os.rename(directory, old)
    os.rename(temp, directory)
    fsync_directory(directory.parent)
    if old.exists():
        shutil.rmtree(old)


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def storable_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, and no two entries sharing memory (safetensors refuses aliases,
    e.g. tied input/output embeddings): the second alias gets its own copy."""
    seen: set[int] = set()
    result: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().to("cpu")
        storage = tensor.untyped_storage().data_ptr()
        if (storage and storage in seen) or not tensor.is_contiguous():
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        seen.add(storage)
        result[name] = tensor
    return result


def _scan(stage_dir: Path) -> tuple[list[tuple[int, Path]], list[Path]]:
    """(complete step checkpoints sorted by step, incomplete ones and leftovers)."""
    complete: list[tuple[int, Path]] = []
    skipped: list[Path] = []
    if not stage_dir.is_dir():
        return complete, skipped
    for entry in sorted(stage_dir.iterdir()):
        if not entry.is_dir():
            continue
        if _LEFTOVER.search(entry.name):
            skipped.append(entry)
            continue
        match = _STEP_DIR.match(entry.name)
        if match is None:
            continue
        if (entry / COMPLETE_MARKER).is_file():
            complete.append((int(match.group(1)), entry))
        else:
            skipped.append(entry)
    complete.sort()
    return complete, skipped


def latest_checkpoint(stage_dir: Path) -> Path | None:
    """The highest-step complete checkpoint under ``stage_dir``, or None."""
    complete, skipped = _scan(stage_dir)
    for path in skipped:
        if _LEFTOVER.search(path.name):
            logger.warning(
                "skipping %s, left over from a checkpoint write that was interrupted; "
                "it can be deleted",
                path,
            )
        else:
            logger.warning(
                "skipping incomplete checkpoint %s (no %s marker: it was being written when a "
                "run stopped); it can be deleted",
                path,
                COMPLETE_MARKER,
            )
    return complete[-1][1] if complete else None


def prune_checkpoints(stage_dir: Path, keep: int) -> None:
    """Deletes all but the newest ``keep`` complete step checkpoints."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    complete, _ = _scan(stage_dir)
    for _, path in complete[:-keep]:
        shutil.rmtree(path)


def load_checkpoint(path: Path) -> LoadedCheckpoint:
    if not (path / COMPLETE_MARKER).is_file():
        raise LlavaKitError(
            f"checkpoint {path} is incomplete or missing (no {COMPLETE_MARKER} marker)",
            hint="it was probably being written when a run stopped: delete it to resume from "
            "the checkpoint before it",
        )
    optimizer_path = path / OPTIMIZER_FILE
    optimizer = (
        torch.load(optimizer_path, map_location="cpu", weights_only=True)
        if optimizer_path.is_file()
        else None
    )
    return LoadedCheckpoint(
        weights=load_file(path / WEIGHTS_FILE, device="cpu"),
        optimizer=optimizer,
        trainer_state=json.loads((path / TRAINER_STATE_FILE).read_text(encoding="utf-8")),
    )


# ------------------------------------------------------------------------ connector files
def save_connector(path: Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Connector weights plus what built them (name, options, widths) as JSON metadata."""
    with atomic_output(path) as temp:
        save_file(
            storable_tensors(state),
            temp,
            metadata={"format": "pt", CONNECTOR_META_KEY: json.dumps(meta, sort_keys=True)},
        )


def read_connector_meta(path: Path) -> dict[str, Any] | None:
    """The metadata ``save_connector`` stored, or None for a file saved without it."""
    with safe_open(path, framework="pt", device="cpu") as handle:
        raw = (handle.metadata() or {}).get(CONNECTOR_META_KEY)
    return json.loads(raw) if raw is not None else None


def load_connector_strict(
    module: torch.nn.Module, path: Path, *, recipe_fields: dict[str, str]
) -> None:
    """Loads connector weights; any missing, unexpected or differently shaped tensor is a
    ModelError that shows the saved meta next to the recipe fields deciding the shapes."""
    if not path.is_file():
        raise ModelError(
            f"connector weights not found: {path}",
            hint="train the stage that writes them first, or point the recipe at an existing "
            "connector weights file",
        )
    try:
        saved = load_file(path, device="cpu")
        meta = read_connector_meta(path)
    except (SafetensorError, OSError, json.JSONDecodeError) as exc:
        raise ModelError(
            f"connector weights {path} cannot be read: {exc}",
            hint="the file is damaged or not a safetensors file; "
            "train the stage that writes it again",
        ) from exc
    expected = module.state_dict()
    problems = _key_problems(saved, expected)
    if problems:
        raise ModelError(
            _mismatch_message(path, problems, meta, recipe_fields),
            hint="use a connector file saved with the same model.connector, model.encoder and "
            "model.llm, or change those recipe fields back to what the file was saved with",
        )
    module.load_state_dict(saved, strict=True)


def _key_problems(saved: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> list[str]:
    mismatched = [
        f"shape mismatch {name}: saved {list(saved[name].shape)} vs expected {list(tensor.shape)}"
        for name, tensor in expected.items()
        if name in saved and saved[name].shape != tensor.shape
    ]
    missing = [name for name in expected if name not in saved]
    unexpected = [name for name in saved if name not in expected]
    lines = _clip(mismatched, "shape mismatches")
    if missing:
        lines.append("missing from the file: " + ", ".join(_clip(missing, "")))
    if unexpected:
        lines.append("in the file but not in this connector: " + ", ".join(_clip(unexpected, "")))
    return lines


def _clip(items: list[str], what: str) -> list[str]:
    if len(items) <= _MAX_LISTED:
        return items
    more = f"... and {len(items) - _MAX_LISTED} more {what}".rstrip()
    return items[:_MAX_LISTED] + [more]


def _mismatch_message(
    path: Path, problems: list[str], meta: dict[str, Any] | None, recipe_fields: dict[str, str]
) -> str:
    lines = [f"connector weights in {path} do not fit the connector this recipe builds:"]
    lines += [f"  {line}" for line in problems]
    if meta is None:
        lines.append("saved with: (no llava-kit metadata in the file)")
    else:
        lines.append(
            f"saved with: connector {meta.get('connector', '?')}, "
            f"vision_dim {meta.get('vision_dim', '?')}, llm_dim {meta.get('llm_dim', '?')}, "
            f"options {json.dumps(meta.get('options', {}), sort_keys=True)}"
        )
    lines.append("this recipe:")
    lines += [f"  {field} = {value}" for field, value in recipe_fields.items()]
    return "\n".join(lines)
