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

It also batches what ASGI does one message at a time, for the ingest
endpoint's thousands of small messages per second:

* uvicorn pauses reading after every received message until the app has
  taken it (two epoll updates and an event-loop round trip per message);
  here reading pauses only while ``PAUSE_MESSAGES`` messages or
  ``PAUSE_BYTES`` bytes wait, which bounds the memory all the same.
* Two scope ``extensions``: ``tradewire.receive_many`` (every waiting
  receive event at once) and ``tradewire.send_texts`` (several text
  messages framed and written with one ``transport.write``, where ASGI's
  ``send`` costs a syscall and a str round trip per message).

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

__all__ = ["RECEIVE_MANY", "SEND_TEXTS", "LeanWebSocketProtocol"]

SEND_TEXTS: Final = "tradewire.send_texts"
"""Scope extension: ``await send_texts([b'{...}', ...])`` sends each as one text message."""
RECEIVE_MANY: Final = "tradewire.receive_many"
"""Scope extension: ``await receive_many()`` is every waiting ASGI receive event (>= 1)."""


PAUSE_MESSAGES: Final = 256
PAUSE_BYTES: Final = 1024 * 1024
"""Reading from the socket pauses while this many messages (or bytes) wait for the app."""


def _size(item: ASGIReceiveEvent) -> int:
    data = item.get("text") or item.get("bytes")
    return len(data) if isinstance(data, str | bytes) else 0


class _MessageQueue:
    """What uvicorn needs of an :class:`asyncio.Queue`: one reader, no bound.

    ``full()`` says when reading should pause: ``PAUSE_MESSAGES`` messages
    or ``PAUSE_BYTES`` bytes of text wait.
    """

    __slots__ = ("_bytes", "_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[ASGIReceiveEvent] = []
        self._waiter: asyncio.Future[None] | None = None
        self._bytes = 0

    def put_nowait(self, item: ASGIReceiveEvent) -> None:
        self._items.append(item)
        self._bytes += _size(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return len(self._items) >= PAUSE_MESSAGES or self._bytes >= PAUSE_BYTES

    async def _wait(self) -> None:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def get(self) -> ASGIReceiveEvent:
        await self._wait()
        item = self._items.pop(0)
        self._bytes -= _size(item)
        return item

    async def get_all(self) -> list[ASGIReceiveEvent]:
        """Every waiting message (at least one), oldest first."""
        await self._wait()
        items, self._items, self._bytes = self._items, [], 0
        return items


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
            scope["extensions"][RECEIVE_MANY] = self.receive_many

    def send_receive_event_to_app(self) -> None:
        # uvicorn pauses reading after every message until the app has taken it: two
        # epoll updates and a loop round trip per message. Pause only when full.
        was_paused, self.read_paused = self.read_paused, True  # keeps uvicorn from pausing
        super().send_receive_event_to_app()
        self.read_paused = was_paused
        if not was_paused and self.queue.full():
            self.read_paused = True
            self.transport.pause_reading()

    async def receive_many(self) -> list[ASGIReceiveEvent]:
        """Every message waiting for the app (at least one): the ASGI receive, batched."""
        messages = await self.queue.get_all()  # type: ignore[attr-defined]
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        return messages  # type: ignore[no-any-return]

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
