"""The names ``runtime.deepspeed`` accepts besides a JSON path, owned here.

The plan's memory table and the built-in DeepSpeed configs are keyed by these constants,
and a test checks that every preset has an entry in both.
"""

from __future__ import annotations

NO_DEEPSPEED = "none"  # one process per run, no DeepSpeed
ZERO2 = "zero2"
ZERO3 = "zero3"
ZERO3_OFFLOAD = "zero3_offload"

# The presets that run under DeepSpeed: each has a built-in config.
ZERO_PRESETS: tuple[str, ...] = (ZERO2, ZERO3, ZERO3_OFFLOAD)
DEEPSPEED_PRESETS: tuple[str, ...] = (NO_DEEPSPEED, *ZERO_PRESETS)
