"""What one request may make the server allocate or compute, checked before the work.

Every limit is an option of ``llava-kit serve``; the defaults keep a single request well
inside a laptop's memory: the body is refused past ``max_body_bytes`` while it is still
being read, an image past ``max_image_bytes`` before its base64 is decoded and past
``max_image_pixels`` from its header, before its pixels are.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServeLimits:
    max_body_bytes: int = 16 * MIB
    max_image_bytes: int = 10 * MIB
    # 4096 x 4096: far beyond any encoder's input size, about 50 MB once decoded to RGB.
    max_image_pixels: int = 4096 * 4096
    max_images: int = 8
    max_tokens: int = 1024  # the most new tokens one request may ask for
    default_max_tokens: int = 256  # for a request that names none (never past max_tokens)
    max_stop_strings: int = 4  # as the OpenAI API
    max_stop_chars: int = 200
    max_queue: int = 64  # requests waiting for a batch; one more is answered 429
    max_batch: int = 16  # requests generated together
    batch_wait_ms: float = 5.0  # how long the first request of a batch waits for others

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < (0 if name == "batch_wait_ms" else 1):
                raise ValueError(f"serve limit {name} must be positive, got {value}")
