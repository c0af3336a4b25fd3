"""Errors in the OpenAI API's shape: ``{"error": {"message", "type", "param", "code"}}``.

Clients written for the OpenAI API (its SDKs, lmms-eval, our own ``ChatClient``) read the
status and this body; the message names what is wrong in the request.
"""

from __future__ import annotations

from typing import Any

from llava_kit.errors import LlavaKitError


class ApiError(Exception):
    """A request the server refuses, with the HTTP status and OpenAI error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def from_user_error(exc: LlavaKitError, *, param: str | None = None) -> ApiError:
    """A llava-kit user error (a template that cannot render the conversation, ...) as a 400."""
    message = exc.message if not exc.hint else f"{exc.message} ({exc.hint})"
    return bad_request(message, param=param)


def queue_full(limit: int) -> ApiError:
    return ApiError(
        429,
        f"the server is busy: {limit} requests are already waiting for a batch; retry shortly",
        type="rate_limit_error", code="queue_full",
    )


def shutting_down() -> ApiError:
    return ApiError(503, "the server is shutting down; retry against another one or later",
                    type="server_error", code="shutting_down")


def internal_error() -> ApiError:
    # The traceback goes to the server's log, never to the client.
    return ApiError(500, "the server failed to answer this request; its log has the details",
                    type="server_error", code="internal_error")
