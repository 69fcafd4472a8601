"""``GET /ws/session``: a user's live session (the WEB channel).

Theory of operation: the handler authenticates the token, then runs two
loops on one connection. The reader decodes client messages (acks,
heartbeats) and reports them to a :class:`SessionListener` (the delivery
driver). The writer drains the session's bounded :class:`Outbox`, several
envelopes per wake-up, and sends a heartbeat whenever it has been idle for
one interval. A session that sent nothing for three intervals is dead and
closed (4408); one whose outbox overflows with guaranteed events is closed as
a slow consumer (1013): its events stay unacknowledged and are replayed when
it reconnects.

Close codes: 4401 token missing, invalid or expired (the reason says which);
4408 heartbeat timeout; 1013 slow consumer; 1001 gateway shutting down.
"""

from __future__ import annotations

import asyncio
import contextlib
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

    __slots__ = ("_wake", "batch", "closed", "last_seen", "outbox", "overflowed", "user_id")

    def __init__(self, user_id: str, *, batch: bool, capacity: int = 1024) -> None:
        self.user_id = user_id
        self.batch = batch
        self.outbox = Outbox(capacity)
        self.closed = False
        self.overflowed = False
        self.last_seen = time.monotonic()
        self._wake = asyncio.Event()

    def push(self, data: bytes, *, guaranteed: bool) -> bool:
        """Queue an encoded envelope; False if it could not be queued."""
        if self.closed:
            return False
        result = self.outbox.put(data, guaranteed=guaranteed)
        if result is PutResult.OVERFLOW:
            self.overflowed = True
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
    writer = asyncio.create_task(_write_loop(ws, session, heartbeat_s))
    try:
        await _read_loop(ws, session, listener)
    finally:
        session.closed = True
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        listener.session_closed(session)


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


async def _write_loop(ws: WebSocket, session: LiveSession, heartbeat_s: float) -> None:
    try:
        while True:
            if not await session.wait_for_work(heartbeat_s):
                if time.monotonic() - session.last_seen > 3 * heartbeat_s:
                    await _close(
                        ws, CLOSE_HEARTBEAT_TIMEOUT, "no message for 3 heartbeat intervals"
                    )
                    return
                session.push(encode_heartbeat(_now_ms(), session.user_id), guaranteed=False)
            await _send_pending(ws, session)
            if session.overflowed:
                reason = "slow consumer: reconnect to receive your undelivered events"
                await _close(ws, CLOSE_SLOW_CONSUMER, reason)
                return
    except (WebSocketDisconnect, RuntimeError, OSError):
        return  # the reader sees the disconnect and cleans up


async def _send_pending(ws: WebSocket, session: LiveSession) -> None:
    while items := session.outbox.take(MAX_PER_MESSAGE if session.batch else 1):
        data = items[0] if len(items) == 1 else encode_batch(items)
        await ws.send_text(data.decode())


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    if ws.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, OSError):
            await ws.close(code=code, reason=reason)
