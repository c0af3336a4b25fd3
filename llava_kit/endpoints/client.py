"""A chat-completions client for any OpenAI-compatible endpoint (standard library only).

- The API key is read from an environment variable whose NAME is configured; the key
  itself is never stored in options, files, logs or error messages.
- 429, 5xx, timeouts, connection errors and malformed replies are retried with bounded
  exponential backoff; other 4xx answers fail at once (retrying cannot fix them).
- ``complete_many`` runs requests on a bounded thread pool and consults a
  :class:`RequestCache` first, so an interrupted job resumes without repeating a request.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from llava_kit.endpoints.cache import RequestCache, request_key
from llava_kit.errors import LlavaKitError

_RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
# Enough of an error body to see what the server said, not a whole HTML page.
_BODY_EXCERPT = 300


class EndpointError(LlavaKitError):
    """An endpoint is misconfigured or a request failed for good."""


class EndpointConfig(BaseModel):
    """Where and how to send chat requests. ``key_env`` names the variable holding the key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="base URL, e.g. https://api.openai.com/v1")
    model: str
    key_env: str | None = Field(
        None, description="name of the environment variable with the API key; None sends none"
    )
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff_s: float = Field(1.0, ge=0, description="first retry delay; doubles each retry")
    max_backoff_s: float = Field(60.0, ge=0)
    concurrency: int = Field(4, ge=1)


class ChatRequest(BaseModel):
    """One completion to ask for; ``id`` is the caller's name for it (not sent)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    messages: list[dict[str, str]]
    params: dict[str, Any] = Field(default_factory=dict)


@dataclass
class ChatResult:
    """The reply text, or why there is none; ``cached`` when no request was sent."""

    id: str
    text: str | None = None
    error: str | None = None
    cached: bool = False
    attempts: int = 0


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # the server's Retry-After, in seconds


@dataclass
class ChatClient:
    config: EndpointConfig
    cache: RequestCache | None = None
    # Injected in tests to skip real waiting; the delays are still computed.
    sleep: Callable[[float], None] = time.sleep
    # Why requests failed for good, in the order they did: a job that keeps going past a
    # failure can still say why (appending to a list is atomic across threads).
    errors: list[str] = field(init=False, default_factory=list)
    _key: str | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.config.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise EndpointError(
                f"endpoint URL {self.config.url!r} is not an http(s) URL",
                hint="give the base URL with its scheme, e.g. http://localhost:8000/v1",
            )
        env = self.config.key_env
        if env is not None:
            key = os.environ.get(env)
            if not key:
                raise EndpointError(
                    f"the environment variable {env} (the endpoint's key_env) is not set",
                    hint=f"export {env}=<your API key>, or name another variable",
                )
            self._key = key

    @property
    def endpoint(self) -> str:
        return self.config.url.rstrip("/") + "/chat/completions"

    def key_for(self, request: ChatRequest) -> str:
        return request_key(self.config.model, request.messages, request.params)

    def complete(self, request: ChatRequest) -> ChatResult:
        """One request through the cache; failures come back in ``ChatResult.error``."""
        key = self.key_for(request)
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return ChatResult(request.id, text=cached, cached=True)
        result = self._send_with_retries(request)
        if result.error is not None:
            self.errors.append(result.error)
        if result.text is not None and self.cache is not None:
            self.cache.put(key, result.text)
        return result

    def complete_many(
        self,
        requests: Sequence[ChatRequest],
        on_result: Callable[[ChatResult], None] | None = None,
    ) -> dict[str, ChatResult]:
        """Every request's result by id, at most ``concurrency`` in flight at a time.

        ``on_result`` is called in the calling thread as each result arrives (to write
        outputs incrementally).
        """
        ids = [r.id for r in requests]
        if len(set(ids)) != len(ids):
            raise ValueError("request ids must be unique")
        results: dict[str, ChatResult] = {}
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            futures = {pool.submit(self.complete, request): request for request in requests}
            try:
                for future in as_completed(futures):
                    result = future.result()
                    results[result.id] = result
                    if on_result is not None:
                        on_result(result)
            except BaseException:
                # Interrupted: drop what has not started; finished ones are in the cache.
                for future in futures:
                    future.cancel()
                raise
        return {request_id: results[request_id] for request_id in ids}

    def _send_with_retries(self, request: ChatRequest) -> ChatResult:
        delay = self.config.backoff_s
        last, retry_after = "", None
        for attempt in range(1, self.config.max_retries + 2):
            try:
                return ChatResult(request.id, text=self._send(request), attempts=attempt)
            except _Retryable as exc:
                last, retry_after = str(exc), exc.retry_after
            except EndpointError as exc:
                return ChatResult(request.id, error=exc.message, attempts=attempt)
            if attempt <= self.config.max_retries:
                # A rate limit's Retry-After can ask for longer than the backoff, never shorter.
                self.sleep(min(max(delay, retry_after or 0.0), self.config.max_backoff_s))
                delay *= 2
        return ChatResult(
            request.id,
            error=f"gave up after {self.config.max_retries + 1} attempts: {last}",
            attempts=self.config.max_retries + 1,
        )

    def _send(self, request: ChatRequest) -> str:
        body = json.dumps(
            {**request.params, "model": self.config.model, "messages": request.messages}
        ).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self._key is not None:
            headers["Authorization"] = f"Bearer {self._key}"
        http_request = urllib.request.Request(self.endpoint, data=body, headers=headers)
        try:
            with urllib.request.urlopen(http_request, timeout=self.config.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = self._redact(exc.read()[:_BODY_EXCERPT].decode("utf-8", "replace"))
            message = f"HTTP {exc.code} from {self.endpoint}: {detail}"
            if exc.code in _RETRY_STATUSES:
                raise _Retryable(message, _seconds(exc.headers.get("Retry-After"))) from None
            raise EndpointError(message) from None
        except (socket.timeout, TimeoutError) as exc:
            raise _Retryable(f"{self.endpoint} timed out after {self.config.timeout_s} s") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (socket.timeout, TimeoutError)):
                raise _Retryable(
                    f"{self.endpoint} timed out after {self.config.timeout_s} s"
                ) from None
            raise _Retryable(f"cannot reach {self.endpoint}: {exc.reason}") from None
        except (ConnectionError, http.client.HTTPException) as exc:
            raise _Retryable(f"connection to {self.endpoint} failed: {exc}") from None
        return self._reply_text(raw)

    def _reply_text(self, raw: bytes) -> str:
        """The first choice's message content; a malformed reply is worth a retry."""
        try:
            reply = json.loads(raw)
            content = reply["choices"][0]["message"]["content"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError):
            excerpt = self._redact(raw[:_BODY_EXCERPT].decode("utf-8", "replace"))
            raise _Retryable(
                f"malformed reply from {self.endpoint} (no choices[0].message.content): {excerpt}"
            ) from None
        if not isinstance(content, str):
            raise _Retryable(f"malformed reply from {self.endpoint}: message content is not a "
                             "string")
        return content

    def _redact(self, text: str) -> str:
        # A server may echo the request headers back; never let the key reach a message.
        return text.replace(self._key, "***") if self._key else text


def _seconds(value: str | None) -> float | None:
    """A Retry-After header given in seconds (the HTTP-date form is ignored)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def chat_messages(system: str | None, turns: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """OpenAI-style message dicts: an optional system message, then (role, content) turns."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.extend({"role": role, "content": content} for role, content in turns)
    return messages
