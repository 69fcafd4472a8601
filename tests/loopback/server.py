"""Serve a Starlette app on 127.0.0.1, port 0, inside the running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["LoopbackServer", "Received", "Scripted", "closed_port", "json_response"]


class _QuietServer(uvicorn.Server):
    """uvicorn without signal handlers: several run at once inside pytest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float
    """``loop.time()`` when it arrived."""

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


@dataclass(frozen=True)
class Scripted:
    """An answer to give instead of the normal one."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    delay_s: float = 0.0
    """Wait this long before answering (a slow service, for timeout tests)."""

    @classmethod
    def json(
        cls,
        status: int,
        document: Any,
        headers: dict[str, str] | None = None,
        *,
        delay_s: float = 0.0,
    ) -> Scripted:
        return cls(status, msgspec.json.encode(document), headers or {}, delay_s=delay_s)

    @classmethod
    def text(cls, status: int, text: str, headers: dict[str, str] | None = None) -> Scripted:
        return cls(status, text.encode(), headers or {}, "text/html")

    def response(self) -> Response:
        return Response(self.body, self.status, self.headers, media_type=self.content_type)


def json_response(status: int, document: Any, headers: dict[str, str] | None = None) -> Response:
    return Scripted.json(status, document, headers).response()


class LoopbackServer:
    """Base of the fake services: records requests, pops scripted answers."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: deque[Scripted] = deque()
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    def app(self) -> Starlette:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def record(self, request: Request) -> Received:
        body = await request.body()
        received = Received(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            at=asyncio.get_running_loop().time(),
        )
        self.received.append(received)
        return received

    async def next_scripted(self) -> Response | None:
        if not self.script:
            return None
        scripted = self.script.popleft()
        if scripted.delay_s:
            await asyncio.sleep(scripted.delay_s)
        return scripted.response()

    async def __aenter__(self) -> LoopbackServer:
        # proto=IPPROTO_TCP: asyncio then sets TCP_NODELAY on accepted connections
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app(),
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.005)
        self._socket = sock
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        await self._task
        self._socket.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
