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

It also offers the app one ASGI extension, ``tradewire.send_texts`` in the
scope's ``extensions``: an ``async`` callable that sends several text
messages (UTF-8 bytes) in one transport write. ASGI has one ``send`` per
message, and each is a ``transport.write`` (a syscall) plus a str round trip;
the ingest endpoint acknowledges a whole commit window at once through it.

It relies on uvicorn's attribute names (``request``, ``response``,
``scope``, ``queue``), checked by the session tests on every upgrade.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.http11 import Request

__all__ = ["SEND_TEXTS", "LeanWebSocketProtocol"]

SEND_TEXTS: Final = "tradewire.send_texts"
"""Scope extension: ``await send_texts([b'{...}', ...])`` sends each as one text message."""


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

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][SEND_TEXTS] = self.send_texts

    async def send_texts(self, messages: Sequence[bytes]) -> None:
        """Send each of ``messages`` (UTF-8 JSON) as a text message, in one write.

        Raises uvicorn's ``ClientDisconnected`` (an ``OSError``) once the
        connection is gone or closing, as ``send`` does.
        """
        await self.writable.wait()
        if self.disconnected or self.close_sent or not self.handshake_complete:
            raise ClientDisconnected()
        conn = self.conn
        try:
            for message in messages:
                conn.send_text(message)
        except InvalidState:  # the peer started closing
            raise ClientDisconnected() from None
        self.transport.write(b"".join(conn.data_to_send()))

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
