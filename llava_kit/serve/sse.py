"""Chat-completion bodies and their streamed form (server-sent events, OpenAI's chunks).

A stream is: one chunk with the assistant role, one chunk per piece of text, one chunk
with the finish reason, the usage chunk when the client asked for it
(``stream_options.include_usage``), then ``data: [DONE]``.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

from llava_kit.serve.jobs import Event, Failed, Finished, TextDelta


def usage(finished: Finished) -> dict[str, int]:
    return {"prompt_tokens": finished.prompt_tokens,
            "completion_tokens": finished.completion_tokens,
            "total_tokens": finished.prompt_tokens + finished.completion_tokens}


def completion_body(completion_id: str, created: int, model: str, finished: Finished) -> dict[str, Any]:
    return {
        "id": completion_id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": finished.text},
                     "logprobs": None, "finish_reason": finished.finish_reason}],
        "usage": usage(finished),
    }


def event_line(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode("utf-8")


async def stream_events(
    events: AsyncIterator[Event], completion_id: str, created: int, model: str, include_usage: bool
) -> AsyncIterator[bytes]:
    def chunk(delta: dict[str, str], finish_reason: str | None = None) -> bytes:
        return event_line({
            "id": completion_id, "object": "chat.completion.chunk", "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None,
                         "finish_reason": finish_reason}],
        })

    yield chunk({"role": "assistant", "content": ""})
    async for event in events:
        if isinstance(event, TextDelta):
            yield chunk({"content": event.text})
        elif isinstance(event, Finished):
            yield chunk({}, event.finish_reason)
            if include_usage:
                yield event_line({"id": completion_id, "object": "chat.completion.chunk",
                                  "created": created, "model": model, "choices": [],
                                  "usage": usage(event)})
            break
        elif isinstance(event, Failed):
            yield event_line(event.error.body())
            break
    yield event_line("[DONE]")
