"""``GET /ws/ingest``: one connector's stream, pipelined, acked only after commit.

Theory of operation
-------------------
Three tasks pump one connection, joined by bounded queues:

``reader``
    ``await ws.receive()`` in a loop; frames go into ``inbox`` (at most
    ``window`` frames; when full the reader stops reading, so TCP pushes
    back on the connector).
``submitter``
    wakes once per loop iteration, takes *every* frame in ``inbox``,
    decodes them (:func:`~tradewire.ingest.pipeline.admit`), hands the valid
    ones to ``store.append_many`` as one task, and queues ``(window, task)``
    in ``inflight``. It does not wait for the commit, so while one window
    commits the next is decoded and submitted: pipelining.
``sender``
    awaits the windows in ``inflight`` *in order*, and sends each message's
    reply (``ack`` or ``error``) in the order the messages came. An ack is
    built only from a finished append, so it never precedes the commit.

Order of application: the store queues records in the order ``append_many``
submits them. A new window's task is started while earlier ones are still
in flight only when the store has room for the whole window and nobody
waits for room (then its first step submits every record at once, before
the submitter resumes); otherwise the submitter first waits for its own
earlier windows to settle. So the records of one connection are applied in
the order sent.

Extensions of the seed protocol (both optional): a text frame holding a JSON
array carries several messages (each gets its own reply, in order); with
``?batch=1`` the replies of each window come as one text frame holding a
JSON array of reply envelopes instead of one frame each. Batching saves a
frame, a syscall and a parse per message on both sides.

Close codes: 4401 API key missing, malformed, unknown or revoked (the reason
says which; the handshake is accepted first so that browsers and SDKs can
read the code); 1011 internal error (unacked messages must be resent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Protocol

from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from tradewire.ingest.keyring import authenticate
from tradewire.ingest.keys import KeyRejected, key_from_headers
from tradewire.ingest.pipeline import (
    Accepted,
    admit,
    admit_body,
    binary_frame,
    now_stamp,
    reply_for,
)
from tradewire.ingest.routing import Hub, Subscriber, parse_control
from tradewire.server._ws_protocol import RECEIVE_MANY, SEND_TEXTS
from tradewire.store import AppendResult, Record
from tradewire.wire import Rejection

__all__ = ["CLOSE_UNAUTHORIZED", "IngestStore", "serve_ingest_ws"]

CLOSE_UNAUTHORIZED: Final = 4401
CLOSE_INTERNAL_ERROR: Final = 1011
DEFAULT_WINDOW: Final = 2048

log = logging.getLogger("tradewire.ingest")


class IngestStore(Protocol):
    """The store as the ingest transports use it."""

    max_pending: int

    @property
    def in_flight(self) -> int:
        """Appends admitted and not yet settled."""
        ...

    @property
    def blocked(self) -> int:
        """Callers waiting for room."""
        ...

    async def append_many(self, records: Sequence[Record]) -> list[AppendResult]:
        """Append in order; return after commit."""
        ...

    async def append(self, record: Record) -> AppendResult:
        """Append one record; return after commit."""
        ...

    async def query(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query."""
        ...


SendTexts = Callable[[Sequence[bytes]], Awaitable[None]]
"""Sends each UTF-8 JSON message as one text message, in order."""
ReceiveMany = Callable[[], Awaitable[list[Message]]]
"""Every ASGI receive event waiting (at least one), in order."""

Window = list[Accepted | Rejection | bytes]
"""One window's items in arrival order; ``bytes`` is an already-built reply."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class IngestConnection(Subscriber):
    """The state of one open ``/ws/ingest`` connection (see module docs)."""

    def __init__(
        self,
        ws: WebSocket,
        store: IngestStore,
        hub: Hub,
        user_id: str,
        *,
        name: str | None,
        window: int,
        max_bytes: int,
        batch: bool = False,
    ) -> None:
        super().__init__(name=name, user_id=user_id)
        self.batch = batch
        self.ws = ws
        self.store = store
        self.hub = hub
        self.window = window
        self.max_bytes = max_bytes
        self.inbox: deque[bytes | str] = deque()
        self.inflight: deque[tuple[Window, asyncio.Task[list[AppendResult]] | None]] = deque()
        self.inflight_messages = 0
        self.closed = False
        self._inbox_ready = asyncio.Event()
        self._inbox_room = asyncio.Event()
        self._inflight_ready = asyncio.Event()
        self._inflight_room = asyncio.Event()
        extensions = ws.scope.get("extensions") or {}
        self._send_texts: SendTexts = extensions.get(SEND_TEXTS) or self._send_each
        self._receive_many: ReceiveMany = extensions.get(RECEIVE_MANY) or self._receive_one

    # -- reader --------------------------------------------------------------

    async def read_loop(self) -> None:
        """Move frames from the socket to ``inbox`` until the client leaves."""
        try:
            while True:
                for message in await self._receive_many():
                    if message["type"] == "websocket.disconnect":
                        return
                    text = message.get("text")
                    self.inbox.append(
                        text if text is not None else bytes(message.get("bytes") or b"")
                    )
                self._inbox_ready.set()
                while len(self.inbox) >= self.window:
                    self._inbox_room.clear()
                    await self._inbox_room.wait()
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        finally:
            self.closed = True
            self._inbox_ready.set()

    async def _receive_one(self) -> list[Message]:
        """One ASGI receive (a server without the ``receive_many`` extension)."""
        return [await self.ws.receive()]

    # -- submitter -----------------------------------------------------------

    async def submit_loop(self) -> None:
        """Decode what arrived and start its append, without awaiting the commit."""
        while True:
            await self._inbox_ready.wait()
            self._inbox_ready.clear()
            if not self.inbox:
                if self.closed:
                    return
                continue
            frames = [self.inbox.popleft() for _ in range(len(self.inbox))]
            self._inbox_room.set()
            await self._submit(self._decode(frames))

    def _decode(self, frames: list[bytes | str]) -> Window:
        now = _now_ms()
        items: Window = []
        for frame in frames:
            if isinstance(frame, bytes):
                items.append(binary_frame())
                continue
            control = parse_control(frame)
            if control is not None:
                items.append(self.hub.control(self, control))
                continue
            if frame.startswith("["):  # several messages in one frame
                found = admit_body(
                    frame.encode(), None, self.user_id, now, max_bytes=self.max_bytes
                )
            else:
                found = [admit(frame, self.user_id, now, max_bytes=self.max_bytes)]
            for item in found:
                if isinstance(item, Accepted) and self.name is None:
                    self.hub.name_connection(self, item.envelope.source)
                items.append(item)
        return items

    async def _submit(self, items: Window) -> None:
        while self.inflight_messages >= self.window:
            self._inflight_room.clear()
            await self._inflight_room.wait()
        records = [item.record for item in items if isinstance(item, Accepted)]
        task: asyncio.Task[list[AppendResult]] | None = None
        if records:
            if not self._store_has_room(len(records)):
                await self._settle_inflight()
            task = asyncio.create_task(self.store.append_many(records))
            await asyncio.sleep(0)  # let the task submit its records before the next window
        self.inflight.append((items, task))
        self.inflight_messages += len(items)
        self._inflight_ready.set()

    def _store_has_room(self, count: int) -> bool:
        store = self.store
        return store.blocked == 0 and store.max_pending - store.in_flight >= count

    async def _settle_inflight(self) -> None:
        tasks = [task for _, task in self.inflight if task is not None]
        if tasks:
            await asyncio.wait(tasks)

    # -- sender --------------------------------------------------------------

    async def send_loop(self) -> None:
        """Send each window's replies in order, once its append has finished."""
        try:
            while True:
                if not self.inflight and not self.outbox:
                    self._inflight_ready.clear()
                    await self._inflight_ready.wait()
                await self._send_routed()
                if self.inflight:
                    await self._send_window(*self.inflight[0])
                    items, _ = self.inflight.popleft()
                    self.inflight_messages -= len(items)
                    self._inflight_room.set()
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        except Exception:  # a bug: never leave the connector waiting for acks
            log.exception("ingest connection failed; closing it")
            await _close(self.ws, CLOSE_INTERNAL_ERROR, "internal error: reconnect and resend")

    async def _send_window(
        self, items: Window, task: asyncio.Task[list[AppendResult]] | None
    ) -> None:
        outcome: list[AppendResult] | BaseException = []
        if task is not None:
            try:
                outcome = await asyncio.shield(task)
            except Exception as exc:  # a failed batch: nothing of it was stored
                outcome = exc
        replies = self._replies(items, outcome)
        if self.batch:
            await self._send_texts([b"[" + b",".join(replies) + b"]"])
        else:
            await self._send_texts(replies)

    async def _send_each(self, messages: Sequence[bytes]) -> None:
        """One ASGI send per message (a server without the ``send_texts`` extension)."""
        for message in messages:
            await self.ws.send_text(message.decode())

    def _replies(self, items: Window, outcome: list[AppendResult] | BaseException) -> list[bytes]:
        """One reply per item, in order; committed messages are routed on."""
        results = iter(outcome) if isinstance(outcome, list) else None
        replies: list[bytes] = []
        stamp = now_stamp()
        for item in items:
            if isinstance(item, bytes):
                replies.append(item)
                continue
            result: AppendResult | BaseException | None = None
            if isinstance(item, Accepted):
                result = next(results) if results is not None else outcome  # type: ignore[assignment]
                if isinstance(result, AppendResult):
                    self.hub.publish(item.envelope, item.record.body, result, origin=self)
            replies.append(reply_for(item, result, self.name, stamp))
        return replies

    async def _send_routed(self) -> None:
        if self.outbox:
            routed = list(self.outbox)
            self.outbox.clear()
            await self._send_texts(routed)

    def wake(self) -> None:
        """Routed messages are waiting in ``outbox``."""
        self._inflight_ready.set()

    async def drain(self) -> None:
        """Wait for every append this connection started (on close)."""
        await self._settle_inflight()


async def serve_ingest_ws(
    ws: WebSocket,
    *,
    store: IngestStore,
    hub: Hub,
    max_bytes: int,
    window: int = DEFAULT_WINDOW,
) -> None:
    """Run one ingest connection from handshake to close."""
    presented = key_from_headers(ws.headers.get("authorization"), ws.query_params.get("key"))
    verdict = await authenticate(store, presented)
    await ws.accept()
    if isinstance(verdict, KeyRejected):
        await _close(ws, CLOSE_UNAUTHORIZED, f"{verdict.code}: {verdict.message}")
        return
    params = ws.query_params
    conn = IngestConnection(
        ws,
        store,
        hub,
        verdict,
        name=params.get("name"),
        window=window,
        max_bytes=max_bytes,
        batch=params.get("batch") in ("1", "true"),
    )
    hub.attach(conn)
    tasks = [
        asyncio.create_task(conn.submit_loop(), name="ingest-submit"),
        asyncio.create_task(conn.send_loop(), name="ingest-send"),
    ]
    try:
        await conn.read_loop()
        await tasks[0]
    finally:
        hub.detach(conn)
        await _stop(tasks)
        await conn.drain()


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    if ws.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, OSError):
            await ws.close(code=code, reason=reason.encode()[:123].decode(errors="ignore"))
