"""``GET /ws/session``: a user's live session (the WEB channel).

Theory of operation: a gateway holds many sessions open and most of them are
idle, so an idle session costs one task and no timer (the target is under
16 KiB of server memory per idle session, see docs/benchmarks.md):

* The connection's own ASGI task authenticates the token and then reads the
  client's messages (acks, heartbeats) and reports them to a
  :class:`SessionListener` (the delivery driver). The session ends when it
  reads the disconnect.
* A writer task exists only while there is something to write:
  :meth:`LiveSession.push` starts one; it drains the session's bounded
  :class:`Outbox`, several envelopes per message with ``?batch=1``, and ends
  when the outbox is empty.
* One :class:`SessionHeartbeats` sweep for the whole gateway, a few times per
  heartbeat interval, asks :func:`~tradewire.sessions.liveness.check_liveness`
  about every session: it queues a heartbeat for a session that wrote
  nothing for one interval, closes a session whose client sent nothing for
  three (4408), busy or idle, and drops without a close frame a session
  whose send has waited three intervals (a client that reads nothing at all:
  no close frame could get through either).
* :func:`serve_session` is a plain ASGI app that the gateway dispatches to
  ahead of FastAPI (:func:`tradewire.server.app.create_asgi`): FastAPI's
  per-request machinery (dependency solving, exit stacks, middleware frames)
  stays suspended for as long as a WebSocket is open and cost more than the
  rest of an idle session together.

A slow consumer is one whose outbox overflows with guaranteed events while
the writer waits on the transport (the client reads slower than events
come): it is closed (1013) once what is queued went out; its events stay
unacknowledged and are replayed when it reconnects. An overflow while the
writer keeps up (a burst, such as the replay of a long queue on connect) is
no reason to close: what does not fit is refused and the delivery engine
retries it after its backoff.

Close codes: 4401 token missing, invalid or expired (the reason says which);
4408 heartbeat timeout; 1013 slow consumer; 1001 gateway shutting down.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol
from urllib.parse import parse_qs

from starlette.types import Receive, Scope, Send

from tradewire.auth import SessionTokens, TokenRejected
from tradewire.sessions.liveness import Liveness, check_liveness
from tradewire.sessions.outbox import Outbox, PutResult
from tradewire.sessions.protocol import (
    ClientAck,
    ClientHeartbeat,
    decode_client_message,
    encode_batch,
    encode_error,
    encode_heartbeat,
)

__all__ = ["LiveSession", "SessionHeartbeats", "SessionListener", "serve_session"]

CLOSE_UNAUTHORIZED = 4401
CLOSE_HEARTBEAT_TIMEOUT = 4408
CLOSE_SLOW_CONSUMER = 1013
MAX_PER_MESSAGE = 256
SWEEPS_PER_INTERVAL = 4
"""How often per heartbeat interval the sweep runs: deadlines hold within a quarter interval."""

_QUEUED = PutResult.QUEUED
_SILENT_REASON = "no message for 3 heartbeat intervals"
_SLOW_REASON = "slow consumer: reconnect to receive your undelivered events"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class LiveSession:
    """One open ``/ws/session`` connection of one user."""

    __slots__ = (
        "_closing",
        "_dropped",
        "_reader",
        "_send",
        "_writer",
        "batch",
        "closed",
        "failure",
        "last_seen",
        "last_sent",
        "outbox",
        "overflowed",
        "send_started",
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
        self.send_started = 0.0
        self.last_seen = self.last_sent = time.monotonic()
        self.failure: BaseException | None = None  # a bug in the writer, raised by the reader
        self._send: Send | None = None
        self._reader: asyncio.Task[Any] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing: tuple[int, str] | None = None
        self._dropped = False

    def attach(self, send: Send, reader: asyncio.Task[Any] | None) -> None:
        """Connect to the transport: ``send`` writes, ``reader`` is the task reading it."""
        self._send = send
        self._reader = reader

    def push(self, data: bytes, *, guaranteed: bool) -> bool:
        """Queue an encoded envelope; False if it could not be queued."""
        if self.closed:
            return False
        result = self.outbox.put(data, guaranteed=guaranteed)
        if self._writer is None:
            self._start_writer()
        if result is _QUEUED:  # by far the most common answer: checked first
            return True
        if result is PutResult.OVERFLOW and self.writing:
            self.overflowed = True  # a slow consumer, not a burst (see module docs)
        return result is PutResult.QUEUED_DROPPED_OLDER

    def close(self, code: int, reason: str) -> None:
        """Close with ``code`` once the send in progress (if any) is out."""
        if self._closing is None:
            self._closing = (code, reason)
            self._start_writer()

    def drop(self) -> None:
        """End the session now, without a close frame (its client reads nothing)."""
        self.closed = self._dropped = True
        for task in (self._writer, self._reader):
            if task is not None and task is not asyncio.current_task():
                task.cancel()

    @property
    def dropped(self) -> bool:
        """Whether :meth:`drop` ended the session."""
        return self._dropped

    async def detach(self) -> None:
        """The session is over: stop writing (the reader has ended)."""
        self.closed = True
        self._send = self._reader = None
        writer = self._writer
        if writer is not None:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    def _start_writer(self) -> None:
        if self._writer is None and self._send is not None and not self._dropped:
            self._writer = asyncio.get_running_loop().create_task(self._write(self._send))

    async def _write(self, send: Send) -> None:
        try:
            while await self._write_next(send):
                pass
        except (RuntimeError, OSError):
            pass  # the client is gone: the reader hears the disconnect
        except Exception as exc:  # a bug: end the session, the reader raises it
            self.failure = exc
            self.drop()
        finally:
            self._writer = None

    async def _write_next(self, send: Send) -> bool:
        """Write one message or the close frame; False when there is nothing more to do."""
        if self._closing is not None:
            await self._send_close(send, *self._closing)
            return False
        if items := self.outbox.take(MAX_PER_MESSAGE if self.batch else 1):
            data = items[0] if len(items) == 1 else encode_batch(items)
            await self._transmit(send, {"type": "websocket.send", "text": data.decode()})
            return True
        if self.overflowed:
            await self._send_close(send, CLOSE_SLOW_CONSUMER, _SLOW_REASON)
        return False

    async def _send_close(self, send: Send, code: int, reason: str) -> None:
        self.closed = True  # nothing queued from now on would go out
        await self._transmit(send, {"type": "websocket.close", "code": code, "reason": reason})

    async def _transmit(self, send: Send, message: dict[str, Any]) -> None:
        self.writing = True
        self.send_started = time.monotonic()
        try:
            await send(message)
        finally:
            self.writing = False
            self.last_sent = time.monotonic()

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


class SessionHeartbeats:
    """The one sweep that keeps every open session's heartbeat and deadlines.

    One task for the whole gateway instead of a timer per session (see the
    module docstring); :meth:`sweep` is the whole decision, on a given clock.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._sessions: dict[LiveSession, None] = {}

    def add(self, session: LiveSession) -> None:
        self._sessions[session] = None

    def discard(self, session: LiveSession) -> None:
        self._sessions.pop(session, None)

    async def run(self) -> None:
        """Sweep every open session, :data:`SWEEPS_PER_INTERVAL` times per interval."""
        while True:
            await asyncio.sleep(self.interval_s / SWEEPS_PER_INTERVAL)
            self.sweep(time.monotonic())

    def sweep(self, now: float) -> None:
        """Heartbeat, close or drop each session as :func:`check_liveness` says."""
        for session in list(self._sessions):
            verdict = check_liveness(
                now,
                last_received=session.last_seen,
                last_sent=session.last_sent,
                send_started=session.send_started if session.writing else None,
                interval=self.interval_s,
            )
            if verdict is Liveness.HEARTBEAT_DUE:
                session.push(encode_heartbeat(_now_ms(), session.user_id), guaranteed=False)
            elif verdict is Liveness.SILENT:
                session.close(CLOSE_HEARTBEAT_TIMEOUT, _SILENT_REASON)
            elif verdict is Liveness.STALLED:
                session.drop()


def _query_value(scope: Scope, name: str) -> str | None:
    values = parse_qs(scope["query_string"].decode("latin-1")).get(name)
    return values[0] if values else None


async def serve_session(
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    tokens: SessionTokens,
    listener: SessionListener,
    heartbeats: SessionHeartbeats,
) -> None:
    """Run one session from handshake to close (an ASGI ``websocket`` app)."""
    if (await receive())["type"] != "websocket.connect":
        return
    verdict = tokens.verify(_query_value(scope, "token"), now=int(time.time()))
    await send({"type": "websocket.accept"})
    if isinstance(verdict, TokenRejected):
        reason = verdict.message[:120]
        await send({"type": "websocket.close", "code": CLOSE_UNAUTHORIZED, "reason": reason})
        return
    session = LiveSession(verdict, batch=_query_value(scope, "batch") in ("1", "true"))
    session.attach(send, asyncio.current_task())
    listener.session_opened(session)
    heartbeats.add(session)
    try:
        await _read_until_disconnect(receive, session, listener)
    except asyncio.CancelledError:
        if not session.dropped:
            raise
        _uncancel()  # our own drop(): end the session normally
    finally:
        heartbeats.discard(session)
        await session.detach()
        listener.session_closed(session)
    if session.failure is not None:  # a bug in the writer still surfaces
        raise session.failure


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


async def _read_until_disconnect(
    receive: Receive, session: LiveSession, listener: SessionListener
) -> None:
    # after our close frame this still reads the acks the client sent before it
    while (message := await receive())["type"] != "websocket.disconnect":
        session.last_seen = time.monotonic()
        data = message.get("text") or message.get("bytes") or b""
        for item in decode_client_message(data):
            if isinstance(item, ClientAck):
                listener.session_acked(session, item.event_ids)
            elif not isinstance(item, ClientHeartbeat):
                session.push(encode_error(item, _now_ms(), session.user_id), guaranteed=False)
