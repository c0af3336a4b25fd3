"""Stopping a stage cleanly, and turning training failures into messages that name the fix.

SIGTERM (a cluster's preemption notice) and SIGINT (Ctrl-C) only set a flag: the stage
loop finishes the current optimizer step, writes a checkpoint and stops, so ``--resume``
continues exactly where it left off. A second Ctrl-C stops at once. ``stop_on`` extends
this to the whole process and to other signals (a scheduler's time-limit warning).
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType, TracebackType

import torch
import torch.distributed as torch_dist

from llava_kit.errors import LlavaKitError

_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_signal_received: str | None = None  # the first signal registered with stop_on that arrived


class TrainingStopped(LlavaKitError):
    """Training stopped before the end of a stage (signal, non-finite loss, out of memory)."""


class Interrupted(TrainingStopped):
    """Stopped by a signal after a step whose checkpoint was saved: ``--resume`` continues."""

    def __init__(self, message: str, *, hint: str, signal_name: str, stage: str, step: int) -> None:
        super().__init__(message, hint=hint)
        self.signal_name = signal_name
        self.stage = stage
        self.step = step


def stop_on(sig: signal.Signals) -> None:
    """For the rest of this process, ``sig`` requests a stop (as SIGTERM does inside a stage
    loop) wherever it arrives: one that comes while data loads or a model is built stops the
    next stage after its first step. For batch jobs, whose scheduler warns before a time
    limit and signals before killing."""

    def note(signum: int, frame: FrameType | None) -> None:
        global _signal_received
        _signal_received = _signal_received or signal.Signals(signum).name

    signal.signal(sig, note)


class StopRequest:
    """While entered, SIGTERM and SIGINT request a stop instead of killing the process."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        # Python only lets the main thread install handlers (tests may train in others).
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in _SIGNALS}
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.signal_name is not None:
            raise KeyboardInterrupt  # a second Ctrl-C: the user does not want to wait
        self.signal_name = signal.Signals(signum).name

    def received(self) -> str | None:
        """The name of the stop signal this process received, if any."""
        return self.signal_name or _signal_received

    def requested(self, world_size: int, device: torch.device) -> bool:
        """True on every rank when any rank was signalled (they must save together)."""
        flag = self.received() is not None
        if world_size > 1:
            tensor = torch.tensor([1.0 if flag else 0.0], device=device)
            torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.MAX)
            flag = bool(tensor.item())
        return flag


def interrupted(signal_name: str, stage: str, step: int, checkpoint: Path) -> Interrupted:
    return Interrupted(
        f"stopped by {signal_name} in stage {stage} after step {step}; checkpoint saved to "
        f"{checkpoint}",
        hint=f"continue with `llava-kit run RECIPE --resume --output-dir {checkpoint.parents[2]}`",
        signal_name=signal_name, stage=stage, step=step,
    )


def non_finite_loss(stage: str, step: int, loss: float, last_good: Path | None) -> TrainingStopped:
    kept = (
        f"the last good checkpoint is {last_good}" if last_good is not None
        else "no step checkpoint was written yet (set save_every_steps to keep some)"
    )
    return TrainingStopped(
        f"stage {stage}: the loss is {loss} at step {step}; training stopped and that step was "
        f"not applied; {kept}",
        hint="lower optimizer.lr or raise warmup_ratio, keep optimizer.max_grad_norm set, use "
        "bf16 rather than fp16, or set runtime.on_nan: skip_batch to drop such steps",
    )


def out_of_memory(stage: str, step: int, micro_size: int, exc: BaseException) -> TrainingStopped:
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return TrainingStopped(
        f"stage {stage}: out of GPU memory at step {step} (batch.micro_size {micro_size}): "
        f"{first_line}",
        hint=f"lower stages.{stage}.batch.micro_size (global_size stays, so results do not "
        f"change; it must divide global_size), set stages.{stage}.gradient_checkpointing: "
        "true, or shard the model with runtime.deepspeed: zero3 (zero3_offload also moves the "
        "optimizer to CPU memory)",
    )


def log_skipped_step(stage: str, step: int, loss: float) -> None:
    logging.getLogger("llava_kit").warning(
        "stage %s: the loss is %s at step %d; skipping that optimizer step "
        "(runtime.on_nan: skip_batch)", stage, loss, step,
    )
