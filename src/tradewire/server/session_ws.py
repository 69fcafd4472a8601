"""``GET /ws/session``: a user's live session (the WEB channel).

Theory of operation: the handler authenticates the token, then runs two
loops on one connection; the session ends when either ends. The reader
decodes client messages (acks, heartbeats) and reports them to a
:class:`SessionListener` (the delivery driver). The writer drains the
session's bounded :class:`Outbox`, several envelopes per wake-up, and sends a
heartbeat whenever it has been idle for one interval. A session that sent
nothing for three intervals is dead and closed (4408), busy or idle.

A slow consumer is one whose outbox overflows with guaranteed events while
the writer waits on the transport (the client reads slower than events
come): it is closed (1013) once what is queued went out; its events stay
unacknowledged and are replayed when it reconnects. An overflow while the
writer keeps up (a burst, such as the replay of a long queue on connect) is
no reason to close: what does not fit is refused and the delivery engine
retries it after its backoff. A client that reads nothing at all stalls the
writer for good (no close frame could be sent either): once one send has
waited three intervals the session is dropped without a close frame.

Close codes: 4401 token missing, invalid or expired (the reason says which);
4408 heartbeat timeout; 1013 slow consumer; 1001 gateway shutting down.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from tradewire.auth import SessionTokens, TokenRejected
from tradewire.sessions.outbox import Outbox, PutResult
from tradewire.sessions.protocol import (
    ClientAck,
    ClientHeartbeat,
    decode_client_message,
    encode_batch,
    encode_error,
    encode_heartbeat,
)

__all__ = ["LiveSession", "SessionListener", "serve_session"]

CLOSE_UNAUTHORIZED = 4401
CLOSE_HEARTBEAT_TIMEOUT = 4408
CLOSE_SLOW_CONSUMER = 1013
MAX_PER_MESSAGE = 256


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class LiveSession:
    """One open ``/ws/session`` connection of one user."""

    __slots__ = (
        "_wake",
        "batch",
        "closed",
        "last_seen",
        "outbox",
        "overflowed",
        "user_id",
        "writing",
    )

    def __init__(self, user_id: str, *, batch: bool, capacity: int = 1024) -> None:
        self.user_id = user_id
        self.batch = batch
        self.outbox = Outbox(capacity)
        self.closed = False
        self.overflowed = False
        self.writing = False  # seen True from outside only while a send waits on the transport
        self.last_seen = time.monotonic()
        self._wake = asyncio.Event()

    def push(self, data: bytes, *, guaranteed: bool) -> bool:
        """Queue an encoded envelope; False if it could not be queued."""
        if self.closed:
            return False
        result = self.outbox.put(data, guaranteed=guaranteed)
        if result is PutResult.OVERFLOW and self.writing:
            self.overflowed = True  # a slow consumer, not a burst (see module docs)
        self._wake.set()
        return result in (PutResult.QUEUED, PutResult.QUEUED_DROPPED_OLDER)

    async def wait_for_work(self, idle_s: float) -> bool:
        """Wait until something is queued (True) or ``idle_s`` passes (False)."""
        if len(self.outbox) or self.overflowed:
            return True
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), idle_s)
        except TimeoutError:
            return False
        return True

    def __hash__(self) -> int:
        return id(self)


class SessionListener(Protocol):
    """Who hears about sessions: the delivery driver."""

    def session_opened(self, session: LiveSession) -> None:
        """A session of ``session.user_id`` is open and ready to receive."""
        ...

    def session_closed(self, session: LiveSession) -> None:
        """The session is gone."""
        ...

    def session_acked(self, session: LiveSession, event_ids: tuple[str, ...]) -> None:
        """The client acknowledged these events."""
        ...


async def serve_session(
    ws: WebSocket, *, tokens: SessionTokens, listener: SessionListener, heartbeat_s: float
) -> None:
    """Run one session from handshake to close."""
    verdict = tokens.verify(ws.query_params.get("token"), now=int(time.time()))
    await ws.accept()
    if isinstance(verdict, TokenRejected):
        await ws.close(code=CLOSE_UNAUTHORIZED, reason=verdict.message[:120])
        return
    session = LiveSession(verdict, batch=ws.query_params.get("batch") in ("1", "true"))
    listener.session_opened(session)
    reader = asyncio.create_task(_read_loop(ws, session, listener))
    writer = asyncio.create_task(_write_loop(ws, session, heartbeat_s))
    try:
        # The writer may end the session on its own (heartbeat timeout, slow
        # consumer, stalled client) while the reader still waits for a frame.
        done, _ = await asyncio.wait((reader, writer), return_when=asyncio.FIRST_COMPLETED)
        if reader not in done and writer.exception() is None and writer.result():
            await reader  # our close frame is out: read the acks the client sent before it
    finally:
        session.closed = True
        for task in (reader, writer):
            task.cancel()
        await asyncio.gather(reader, writer, return_exceptions=True)
        listener.session_closed(session)
    for task in (reader, writer):  # a bug in either loop still surfaces
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error


async def _read_loop(ws: WebSocket, session: LiveSession, listener: SessionListener) -> None:
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("text") or message.get("bytes") or b""
        session.last_seen = time.monotonic()
        for item in decode_client_message(data):
            if isinstance(item, ClientAck):
                listener.session_acked(session, item.event_ids)
            elif not isinstance(item, ClientHeartbeat):
                session.push(encode_error(item, _now_ms(), session.user_id), guaranteed=False)


async def _write_loop(ws: WebSocket, session: LiveSession, heartbeat_s: float) -> bool:
    """Feed the client until the session ends; True if it ended with our close frame."""
    dead_after = 3 * heartbeat_s
    try:
        while True:
            idle = not await session.wait_for_work(heartbeat_s)
            # checked on every wake-up: a stream of events must not hide a dead client
            if time.monotonic() - session.last_seen > dead_after:
                reason = "no message for 3 heartbeat intervals"
                return await _close(ws, CLOSE_HEARTBEAT_TIMEOUT, reason, dead_after)
            if idle:
                session.push(encode_heartbeat(_now_ms(), session.user_id), guaranteed=False)
            await _send_pending(ws, session, dead_after)
            if session.overflowed:
                reason = "slow consumer: reconnect to receive your undelivered events"
                return await _close(ws, CLOSE_SLOW_CONSUMER, reason, dead_after)
    except TimeoutError:
        return False  # the client read nothing for dead_after: drop it (no close frame fits)
    except (WebSocketDisconnect, RuntimeError, OSError):
        return False  # the client is gone


async def _send_pending(ws: WebSocket, session: LiveSession, stall_s: float) -> None:
    while items := session.outbox.take(MAX_PER_MESSAGE if session.batch else 1):
        data = items[0] if len(items) == 1 else encode_batch(items)
        session.writing = True
        try:
            async with asyncio.timeout(stall_s):
                await ws.send_text(data.decode())
        finally:
            session.writing = False


async def _close(ws: WebSocket, code: int, reason: str, stall_s: float) -> bool:
    """Send a close frame; whether it went out (not to a client that stopped reading)."""
    if ws.application_state is not WebSocketState.CONNECTED:
        return False
    try:
        async with asyncio.timeout(stall_s):
            await ws.close(code=code, reason=reason)
    except (RuntimeError, OSError):  # TimeoutError included
        return False
    return True
