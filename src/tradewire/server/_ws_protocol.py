"""uvicorn's sans-I/O WebSocket protocol, trimmed for many idle connections.

Theory of operation: uvicorn keeps, for the whole life of a WebSocket, the
HTTP upgrade request and the handshake response (each with its parsed
headers; websockets' parser also holds on to the request), the ASGI scope's
raw header list, and an :class:`asyncio.Queue`
(three deques, about 2 KiB even when empty) for the messages the app has not
read yet. None of the first three is read again once the handshake is out,
and the queue only ever has one reader (the app's ``receive``). This
subclass forgets the handshake once it is sent and keeps the app's messages
in :class:`_MessageQueue`, a list and one waiter: several KiB less per open
idle session (docs/benchmarks.md). Everything else is uvicorn's.

It relies on uvicorn's attribute names (``request``, ``response``,
``scope``, ``queue``), checked by the session tests on every upgrade.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["LeanWebSocketProtocol"]


class _MessageQueue:
    """What uvicorn needs of an :class:`asyncio.Queue`: one reader, no bound."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[ASGIReceiveEvent] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: ASGIReceiveEvent) -> None:
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> ASGIReceiveEvent:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)  # rarely more than one: uvicorn pauses reading


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol without the per-connection ballast."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _MessageQueue()  # type: ignore[assignment]

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if self.handshake_complete and hasattr(self, "response"):
            self._forget_handshake()

    def _forget_handshake(self) -> None:
        # websockets' parser generator keeps the request as a local for the life of
        # the connection: emptying its headers is what frees them
        self.request.headers.clear()
        del self.request, self.response
        self.scope["headers"] = ()
