"""The seams of a stage's training loop: hooks run after every optimizer step and at the
end of every epoch. Step checkpoints, stopping on a signal and per-epoch evaluation are
hooks; a new stage behaviour is one more."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from llava_kit.model.vlm import LlavaModel
from llava_kit.train.backend import Backend
from llava_kit.train.context import RunContext
from llava_kit.train.signals import StopRequest, interrupted
from llava_kit.train.stage_checkpoints import StageCheckpoints


class StageLoop(Protocol):
    """What a hook sees of the running stage (``StageRunner``)."""

    ctx: RunContext
    model: LlavaModel
    name: str
    checkpoints: StageCheckpoints
    backend: Backend | None


@dataclass(frozen=True)
class StepEnd:
    """Where the loop stands after an optimizer step."""

    stage: str
    step: int  # optimizer steps finished in this stage, counting resumed ones
    total_steps: int
    steps_per_epoch: int
    samples_seen: int  # by this process's run of the stage (not counting resumed steps)

    @property
    def finished_epoch(self) -> int | None:
        """The epoch this step finished, if it finished one."""
        if self.step % self.steps_per_epoch:
            return None
        return self.step // self.steps_per_epoch

    @property
    def is_last(self) -> bool:
        return self.step >= self.total_steps


class StageHook:
    """Override what you need; every rank calls every hook (hooks may use collectives)."""

    def after_epoch(self, loop: StageLoop, at: StepEnd) -> None:
        """After the step that finished epoch ``at.finished_epoch``, before ``after_step``."""

    def after_step(self, loop: StageLoop, at: StepEnd) -> None:
        """After every optimizer step."""


class PeriodicCheckpoints(StageHook):
    """``save_every_steps``: a resumable checkpoint every N steps (the final one is saved
    when the stage ends, so the last step writes none)."""

    def __init__(self, every: int | None) -> None:
        self.every = every

    def after_step(self, loop: StageLoop, at: StepEnd) -> None:
        if self.every and at.step % self.every == 0 and not at.is_last:
            loop.checkpoints.save_step(_backend(loop), at.step, at.samples_seen)


class StopOnSignal(StageHook):
    """SIGTERM/SIGINT on any rank: checkpoint the finished step (unless just saved) and stop."""

    def __init__(self, request: StopRequest) -> None:
        self.request = request

    def after_step(self, loop: StageLoop, at: StepEnd) -> None:
        ctx = loop.ctx
        if not self.request.requested(ctx.dist.world_size, ctx.device):
            return
        if not loop.checkpoints.has_step(at.step):
            loop.checkpoints.save_step(_backend(loop), at.step, at.samples_seen)
        raise interrupted(
            self.request.received() or "a signal to another rank", at.stage, at.step,
            loop.checkpoints.step_dir(at.step),
        )


def _backend(loop: StageLoop) -> Backend:
    assert loop.backend is not None, "hooks run inside the loop, after the backend exists"
    return loop.backend
