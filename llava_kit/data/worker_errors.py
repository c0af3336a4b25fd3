"""A DataError raised while a DataLoader worker loads a sample, shown whole to the user.

torch re-raises a worker's exception in the training process as ``type(exc)(text)``, where
``text`` is the worker's formatted traceback: a plain DataError would print that traceback
as its message and lose its hint. A SampleLoadError recognises that text and reads its own
message and hint back out of it, so the error is one screen wherever the sample was loaded.
"""

from __future__ import annotations

from llava_kit.errors import DataError

# How LlavaKitError.__str__ joins the hint to the message, and so how it appears in the text.
_HINT_SEPARATOR = "\n  hint: "


class SampleLoadError(DataError):
    """A sample that cannot be loaded for a batch (unreadable image, bad cached features)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        if hint is None and message.startswith(f"Caught {type(self).__name__} in DataLoader"):
            message, hint = _original(message, type(self))
        super().__init__(message, hint=hint)


def _original(text: str, error_type: type[SampleLoadError]) -> tuple[str, str | None]:
    """The message and hint of the error whose formatted traceback is ``text``."""
    # The traceback ends with "module.Class: str(error)"; the error's own line is the last.
    _, found, shown = text.rpartition(f"\n{error_type.__module__}.{error_type.__qualname__}: ")
    if not found:
        return text, None
    message, joined, hint = shown.rstrip("\n").rpartition(_HINT_SEPARATOR)
    return (message, hint) if joined else (hint, None)
