"""Running the app: uvicorn on a socket bound here (so a port in use is one clear error),
in the foreground for ``llava-kit serve``, or on a background thread for tests and
benchmarks."""

from __future__ import annotations

import socket
import threading
import time
from types import FrameType, TracebackType
from typing import Callable

import uvicorn
from fastapi import FastAPI

from llava_kit.errors import LlavaKitError

STARTUP_TIMEOUT_S = 60.0


def bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise LlavaKitError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="choose another --port (or stop what uses it), and a --host of this machine",
        ) from None


class _Server(uvicorn.Server):
    """uvicorn waits for open requests before the app's shutdown runs: ``on_exit`` ends
    them first (the scheduler answers them 503), so a stop never waits on long answers."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.on_exit()
        super().handle_exit(sig, frame)


def _server(app: FastAPI, log_level: str, on_exit: Callable[[], None]) -> _Server:
    # Admission control is the scheduler's queue (429), not uvicorn's connection limits.
    return _Server(uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=5), on_exit)


def run_server(app: FastAPI, sock: socket.socket, *, on_exit: Callable[[], None],
               log_level: str = "info") -> None:
    """Serve until Ctrl-C; ``on_exit`` (the service's ``close``) runs first."""
    _server(app, log_level, on_exit).run(sockets=[sock])


class BackgroundServer:
    """``with BackgroundServer(app) as server:`` then talk to ``server.url`` (127.0.0.1)."""

    def __init__(self, app: FastAPI, *, on_exit: Callable[[], None],
                 log_level: str = "warning") -> None:
        self._socket = bind("127.0.0.1", 0)
        self.port = self._socket.getsockname()[1]
        self._server = _server(app, log_level, on_exit)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="llava-kit-serve", daemon=True)

    @property
    def url(self) -> str:
        """The API's base URL, as OpenAI clients take it."""
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "BackgroundServer":
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the background server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._server.on_exit()
        self._server.should_exit = True
        self._thread.join()
        self._socket.close()
