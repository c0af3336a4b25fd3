"""Streaming an answer as it is generated, cut at the template's stop strings.

transformers' ``TextStreamer`` decodes the new tokens as they arrive and hands out text
in word-sized pieces; ``StopFilter`` holds back any tail that could still become a stop
string, so the user never sees a half-printed ``###``.
"""

from __future__ import annotations

from typing import Callable, Sequence

from transformers import PreTrainedTokenizerBase, TextStreamer


class StopFilter:
    """Passes text on until the first stop string; drops the answer's leading whitespace."""

    def __init__(self, stop_strings: Sequence[str], emit: Callable[[str], None]) -> None:
        self._stops = tuple(s for s in stop_strings if s)
        self._emit = emit
        self._held = ""
        self._started = False
        self.stopped = False

    def feed(self, text: str) -> None:
        if self.stopped:
            return
        buffer = self._held + text
        if not self._started:
            buffer = buffer.lstrip()
        hits = [i for i in (buffer.find(stop) for stop in self._stops) if i >= 0]
        if hits:
            self._send(buffer[: min(hits)])
            self._held, self.stopped = "", True
            return
        keep = open_stop_suffix(buffer, self._stops)
        self._send(buffer[: len(buffer) - keep])
        self._held = buffer[len(buffer) - keep :]

    def finish(self) -> None:
        """Generation ended without a stop string: what was held back is answer text."""
        if not self.stopped:
            self._send(self._held)
            self._held = ""

    def _send(self, piece: str) -> None:
        if piece:
            self._started = True
            self._emit(piece)


def open_stop_suffix(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of a stop string."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


class CallbackStreamer(TextStreamer):
    """A ``TextStreamer`` that sends its text through a ``StopFilter`` instead of printing."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stop_filter: StopFilter) -> None:
        # skip_prompt: with inputs_embeds the first put() is the (empty) prompt ids.
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.stop_filter = stop_filter

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        self.stop_filter.feed(text)
        if stream_end:
            self.stop_filter.finish()
