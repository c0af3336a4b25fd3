"""Checkpoints that survive a crash at any moment and are verified before use, exact RNG
state, and strict connector files.

A checkpoint is a directory written under a temporary name, finished with a ``COMPLETE``
marker and only then renamed into place, so a directory named ``step-XXXXXXXX`` with a
marker was written whole. Its ``checksums.json`` holds the SHA-256 of every file (and of
files beside it that it vouches for, such as the stage's connector), so damage after the
write (a flipped bit, a truncated copy) is found before the checkpoint is used. Weights are
safetensors; the optimizer state is a torch pickle restricted to plain containers and
tensors (``weights_only=True`` on load); the trainer state is JSON.
"""

from __future__ import annotations

import base64
import json
import logging
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

from llava_kit.digests import file_sha256
from llava_kit.errors import LlavaKitError, ModelError
from llava_kit.json_io import read_json
from llava_kit.tensor_files import writing
from llava_kit.atomic_files import LEFTOVER_DIRECTORY, atomic_directory, atomic_output

try:
    import numpy
except ImportError:  # numpy is optional for torch; its RNG is then simply not part of the state
    numpy = None  # type: ignore[assignment]

logger = logging.getLogger("llava_kit")

COMPLETE_MARKER = "COMPLETE"
CHECKSUMS_FILE = "checksums.json"
WEIGHTS_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
TRAINER_STATE_FILE = "trainer_state.json"
CONNECTOR_META_KEY = "llava_kit.connector"

_STEP_DIR = re.compile(r"^step-(\d{8,})$")
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
    beside: tuple[str, ...] = (),
) -> Path:
    """Writes a whole checkpoint at ``directory``, replacing an older one there atomically.

    ``write_extra(temp_dir)`` may add more files; it runs before the checksums and the
    marker, so those files are covered by the same guarantees. ``beside`` names files next
    to ``directory``, already written, whose checksums it records too.
    """
    with atomic_directory(directory) as temp:
        with writing(directory / WEIGHTS_FILE):
            save_file(storable_tensors(weights), temp / WEIGHTS_FILE, metadata={"format": "pt"})
        if optimizer is not None:
            torch.save(optimizer, temp / OPTIMIZER_FILE)
        (temp / TRAINER_STATE_FILE).write_text(
            json.dumps(trainer_state, indent=2) + "\n", encoding="utf-8"
        )
        if write_extra is not None:
            write_extra(temp)
        _write_checksums(temp, {name: directory.parent / name for name in beside})
        write_complete_marker(temp)
    return directory


class DamagedCheckpoint(ModelError):
    """A complete checkpoint whose files no longer match their checksums."""


def verify_checkpoint(directory: Path) -> None:
    """Raise ``DamagedCheckpoint`` naming the first file that is missing or differs from
    what was written; reads every byte (SHA-256)."""
    if not is_complete(directory):
        raise DamagedCheckpoint(
            f"checkpoint {directory} is incomplete (no {COMPLETE_MARKER} marker)",
            hint=_DAMAGED_HINT,
        )
    manifest_path = directory / CHECKSUMS_FILE
    if not manifest_path.is_file():
        raise DamagedCheckpoint(f"checkpoint {directory} has no {CHECKSUMS_FILE}, so it cannot "
                                "be verified", hint=_DAMAGED_HINT)
    manifest = read_json(manifest_path, hint=_DAMAGED_HINT)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    beside = manifest.get("beside", {}) if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not isinstance(beside, dict) or not files:
        raise DamagedCheckpoint(f"{manifest_path} is not a checksum list", hint=_DAMAGED_HINT)
    for folder, listed in ((directory, files), (directory.parent, beside)):
        for name, expected in listed.items():
            path = folder / str(name)
            if Path(str(name)).is_absolute() or ".." in Path(str(name)).parts:
                raise DamagedCheckpoint(f"{manifest_path} names a file outside the checkpoint: "
                                        f"{name}", hint=_DAMAGED_HINT)
            if not path.is_file():
                raise DamagedCheckpoint(f"checkpoint {directory}: {path} is missing",
                                        hint=_DAMAGED_HINT)
            if file_sha256(path) != expected:
                raise DamagedCheckpoint(
                    f"checkpoint {directory}: {path} does not match the checksum recorded when "
                    "it was written (the file was changed or damaged since)",
                    hint=_DAMAGED_HINT,
                )


_DAMAGED_HINT = (
    "restore the run directory from a copy, or delete the damaged checkpoint: --resume then "
    "continues from the newest good one (a deleted final/ trains its stage again)"
)


def _write_checksums(directory: Path, beside: dict[str, Path]) -> None:
    files = {
        path.relative_to(directory).as_posix(): file_sha256(path)
        for path in sorted(directory.rglob("*")) if path.is_file()
    }
    manifest = {"algorithm": "sha256", "files": files,
                "beside": {name: file_sha256(path) for name, path in beside.items()}}
    (directory / CHECKSUMS_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def is_complete(directory: Path) -> bool:
    """A checkpoint folder that was written to the end (see ``write_complete_marker``)."""
    return (directory / COMPLETE_MARKER).is_file()


def write_complete_marker(directory: Path) -> None:
    """The last file of a checkpoint: its presence says every other file is whole."""
    (directory / COMPLETE_MARKER).write_text("complete\n", encoding="utf-8")


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
        if LEFTOVER_DIRECTORY.search(entry.name):
            skipped.append(entry)
            continue
        match = _STEP_DIR.match(entry.name)
        if match is None:
            continue
        if is_complete(entry):
            complete.append((int(match.group(1)), entry))
        else:
            skipped.append(entry)
    complete.sort()
    return complete, skipped


def latest_checkpoint(stage_dir: Path) -> Path | None:
    """The highest-step checkpoint under ``stage_dir`` that is complete and matches its
    checksums (damaged ones are named and passed over), or None."""
    complete, skipped = _scan(stage_dir)
    for path in skipped:
        if LEFTOVER_DIRECTORY.search(path.name):
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
    for _, path in reversed(complete):
        try:
            verify_checkpoint(path)
        except DamagedCheckpoint as exc:
            logger.warning("skipping damaged checkpoint: %s", exc.message)
            continue
        return path
    return None


def prune_checkpoints(stage_dir: Path, keep: int) -> None:
    """Deletes all but the newest ``keep`` complete step checkpoints."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    complete, _ = _scan(stage_dir)
    for _, path in complete[:-keep]:
        shutil.rmtree(path)


def load_checkpoint(path: Path, *, verified: bool = False) -> LoadedCheckpoint:
    """The checkpoint's contents, after checking every file against its checksum (unless
    the caller just did: ``verified``)."""
    if not is_complete(path):
        raise LlavaKitError(
            f"checkpoint {path} is incomplete or missing (no {COMPLETE_MARKER} marker)",
            hint="it was probably being written when a run stopped: delete it to resume from "
            "the checkpoint before it",
        )
    if not verified:
        verify_checkpoint(path)
    optimizer_path = path / OPTIMIZER_FILE
    optimizer = (
        torch.load(optimizer_path, map_location="cpu", weights_only=True)
        if optimizer_path.is_file()
        else None
    )
    return LoadedCheckpoint(
        weights=load_file(path / WEIGHTS_FILE, device="cpu"),
        optimizer=optimizer,
        trainer_state=read_json(path / TRAINER_STATE_FILE, hint=_DAMAGED_HINT),
    )


# ------------------------------------------------------------------------ connector files
def save_connector(path: Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Connector weights plus what built them (name, options, widths) as JSON metadata."""
    with atomic_output(path) as temp, writing(path):
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


_FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})


def check_connector_file(path: Path) -> None:
    """A connector file a stage may start from: present, readable safetensors whose tensors
    are all floating point. Reads only the header, so runs check it before any work."""
    if not path.is_file():
        raise ModelError(
            f"connector weights not found: {path}",
            hint="train the stage that writes them first, or point the recipe at an existing "
            "connector weights file",
        )
    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            dtypes = {name: handle.get_slice(name).get_dtype() for name in handle.keys()}
            metadata = handle.metadata() or {}
        json.loads(metadata.get(CONNECTOR_META_KEY, "{}"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(
            f"connector weights {path} cannot be read: {exc}",
            hint="the file is damaged or not a safetensors file; "
            "train the stage that writes it again",
        ) from exc
    not_float = [f"{name} ({dtype})" for name, dtype in dtypes.items() if dtype not in _FLOAT_DTYPES]
    if not_float:
        # Casting quantized or integer tensors to floats would train from garbage values.
        raise ModelError(
            f"connector weights in {path} are not floating point: {', '.join(_clip(not_float, ''))}",
            hint="give a connector file saved by llava-kit (or any float16/bfloat16/float32 "
            "safetensors with the connector's keys); quantized connectors cannot be trained on",
        )


def load_connector_strict(
    module: torch.nn.Module, path: Path, *, recipe_fields: dict[str, str]
) -> None:
    """Loads connector weights; any missing, unexpected or differently shaped tensor is a
    ModelError that shows the saved meta next to the recipe fields deciding the shapes."""
    check_connector_file(path)
    saved = load_file(path, device="cpu")
    meta = read_connector_meta(path)
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
