"""The OpenAI-compatible HTTP API: routes, authentication and the error boundary.

FastAPI on Starlette, run by uvicorn: an asyncio server, so thousands of idle or
streaming connections cost no threads, with server-sent events as a plain streaming
response. Request parsing, image decoding and preprocessing run on Starlette's thread
pool, generation on the scheduler's one thread. Every refusal is an OpenAI-shaped error;
an unexpected failure is a 500 whose traceback stays in the server's log.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from llava_kit.serve.errors import ApiError, internal_error
from llava_kit.serve.jobs import Event, Failed, Finished, Job
from llava_kit.serve.request import parse_request
from llava_kit.serve.service import ModelService
from llava_kit.serve.sse import completion_body, stream_events

log = logging.getLogger("llava_kit.serve")
# How often a non-streaming request checks that its client is still there.
DISCONNECT_POLL_S = 0.25
# A body over the limit is still read (and dropped) up to this size, so that its client,
# busy sending, gets the 413 instead of a reset connection; a larger one is cut off.
_DRAIN_BYTES = 64 * 1024 * 1024


def create_app(service: ModelService, *, api_key: str | None = None) -> FastAPI:
    """The app serving ``service``; the scheduler runs while the app does."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(title="llava-kit serve", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return JSONResponse(ApiError(exc.status_code, message).body(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        error = internal_error()
        return JSONResponse(error.body(), status_code=error.status)

    def authorize(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), api_key.encode()):
            raise ApiError(401, "missing or wrong API key: send the header "
                           "'Authorization: Bearer <key>'", code="invalid_api_key")

    @app.get("/health")
    async def health() -> dict[str, object]:
        return {"status": "ok", "model": service.name, **service.scheduler.stats()}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, object]:
        authorize(request)
        return {"object": "list", "data": [
            {"id": service.name, "object": "model", "created": 0, "owned_by": "llava-kit"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        authorize(request)
        body = await read_body(request, service.limits.max_body_bytes)
        parsed = await run_in_threadpool(parse_request, body, service.limits, service.image_position)
        if parsed.model != service.name:
            raise ApiError(404, f"model {parsed.model!r} is not served here; this server "
                           f"serves {service.name!r}", param="model", code="model_not_found")
        prompt = await run_in_threadpool(service.prepare_request, parsed)
        events = _AsyncEvents(asyncio.get_running_loop())
        job = service.submit(prompt, events.emit)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if parsed.stream:
            return StreamingResponse(
                _cancel_when_closed(stream_events(events, completion_id, created, service.name,
                                                  parsed.include_usage), job),
                media_type="text/event-stream", headers={"Cache-Control": "no-cache"},
            )
        finished = await _wait(events, job, request)
        if finished is None:  # the client left; nobody reads this
            return Response(status_code=499)
        return JSONResponse(completion_body(completion_id, created, service.name, finished))

    return app


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past ``limit`` bytes; memory stays within the limit."""
    drain = max(_DRAIN_BYTES, 4 * limit)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > drain:
        raise _too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > drain:
            break
        else:
            chunks = []  # past the limit: read on (so the client sees the answer) but keep nothing
    if size > limit:
        raise _too_large(size, limit)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> ApiError:
    return ApiError(413, f"the request body has {size:,} bytes, more than the {limit:,} this "
                    "server accepts", code="request_too_large")


class _AsyncEvents:
    """A job's events, handed from the scheduler's thread to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

    def emit(self, event: Event) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # the loop has closed: the server is shutting down
            pass

    def __aiter__(self) -> "_AsyncEvents":
        return self

    async def __anext__(self) -> Event:
        return await self._queue.get()


async def _cancel_when_closed(chunks: AsyncIterator[bytes], job: Job) -> AsyncIterator[bytes]:
    # Starlette stops iterating when the client disconnects: the row is ended at once.
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        job.cancel()


async def _wait(events: _AsyncEvents, job: Job, request: Request) -> Finished | None:
    while True:
        try:
            event = await asyncio.wait_for(anext(events), DISCONNECT_POLL_S)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                job.cancel()
                return None
            continue
        if isinstance(event, Finished):
            return event
        if isinstance(event, Failed):
            raise event.error
