"""Ingest connector client: stream envelopes to ``/ws/ingest``, get an outcome for each.

Theory of operation
-------------------
Two layers, as in the rest of tradewire:

* :class:`ConnectorState` (pure, no asyncio, no socket) holds the *unacked*
  messages in send order, keyed by ``msg_id``. :meth:`~ConnectorState.submit`
  registers a message and returns its frame; :meth:`~ConnectorState.receive`
  reads a frame from the gateway (one reply, or a JSON array of replies
  with ``?batch=1``) and returns the :class:`Acked` / :class:`Refused`
  outcomes it settles, plus the frames that were not replies (routed
  messages). :meth:`~ConnectorState.resend` lists every unacked frame, in
  order, for a fresh connection. An ack is the gateway's promise that the
  message is committed, so only then is it forgotten.
* :class:`Connector` pumps it over a ``websockets`` connection. It connects
  (retrying with the pure :func:`backoff_delay`; the sleep is injectable),
  resends what is unacked, sends heartbeats every ``heartbeat_s`` and
  resolves each :meth:`Connector.send`'s future with the outcome. A
  refused message (``VALIDATION_ERROR``, ``EXECUTION_CONFLICT``, ...) is a
  value, :class:`Refused`, never an exception; ``STORE_UNAVAILABLE`` is not
  final: the connector reconnects and resends. A resent ``msg_id`` is
  stored once by the gateway, so resending after a lost connection never
  duplicates anything.

At most ``window`` messages are unacked at once: :meth:`Connector.send`
waits for room (backpressure), so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import random
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Self

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

__all__ = [
    "Acked",
    "Connector",
    "ConnectorClosed",
    "ConnectorState",
    "Outcome",
    "Refused",
    "backoff_delay",
    "envelope",
    "heartbeat",
    "ingest_event",
    "log_record",
    "refusals_by_code",
]

log = logging.getLogger("tradewire.sdk.connector")

DEFAULT_WINDOW: Final = 1024
"""Unacknowledged messages a :class:`Connector` keeps in flight unless told otherwise."""
FRAMES_PER_SEND: Final = 256
"""At most this many queued messages go out as one JSON-array frame."""
RETRYABLE: Final = frozenset({"STORE_UNAVAILABLE"})
"""Error codes meaning "nothing was stored, resend": not an outcome, a retry."""
CLOSE_UNAUTHORIZED: Final = 4401
Sleep = Callable[[float], Awaitable[None]]


class Acked(msgspec.Struct, frozen=True):
    """The gateway committed the message (``duplicate``: it already had it)."""

    msg_id: str
    duplicate: bool = False


class Refused(msgspec.Struct, frozen=True):
    """The gateway refused the message: ``code``, what to do, which ``field``."""

    msg_id: str
    code: str
    message: str
    field: str | None = None


Outcome = Acked | Refused


def backoff_delay(
    attempt: int, *, base: float = 0.1, cap: float = 10.0, jitter: float = 0.5
) -> float:
    """Seconds to wait before reconnect ``attempt`` (0 = first retry), "equal jitter" style.

    ``base * 2**attempt`` capped at ``cap``; ``jitter`` in [0, 1] picks where
    in the upper half of that span the delay falls (pass ``random.random()``).
    """
    span = min(cap, base * 2.0 ** min(attempt, 62))
    return span / 2 + span / 2 * min(1.0, max(0.0, jitter))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(
    msg_type: str,
    payload: Mapping[str, Any],
    *,
    source: str,
    target: str | None = "api-gateway",
    msg_id: str | None = None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """A protocol envelope with a fresh ``msg_id`` (a UUID) unless one is given."""
    return {
        "msg_id": msg_id or str(uuid.uuid4()),
        "msg_type": msg_type,
        "timestamp": timestamp or _now(),
        "source": source,
        "target": target,
        "payload": dict(payload),
    }


def ingest_event(
    run_id: str,
    event_type: str,
    payload_json: Mapping[str, Any],
    *,
    source: str,
    event_utc: str | None = None,
    msg_id: str | None = None,
) -> dict[str, Any]:
    """An ``ingest_event`` envelope (order, execution, market_data, ...)."""
    stamp = event_utc or _now()
    payload = {
        "run_id": run_id,
        "event_type": event_type,
        "event_utc": stamp,
        "payload_json": dict(payload_json),
    }
    return envelope("ingest_event", payload, source=source, msg_id=msg_id)


def log_record(
    level: str, name: str, message: str, *, source: str, meta: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A ``log_record`` envelope (``meta.run_id`` ties it to a run)."""
    payload: dict[str, Any] = {
        "timestamp": _now(),
        "level": level,
        "name": name,
        "message": message,
    }
    if meta is not None:
        payload["meta"] = dict(meta)
    return envelope("log_record", payload, source=source, target=None)


def heartbeat(*, source: str, status: str = "alive") -> dict[str, Any]:
    """A ``heartbeat`` envelope."""
    return envelope("heartbeat", {"status": status, "timestamp": _now()}, source=source)


class _Reply(msgspec.Struct):
    msg_type: str = ""
    payload: dict[str, Any] = msgspec.field(default_factory=dict)


_REPLY: Final = msgspec.json.Decoder(_Reply | list[_Reply])


class ConnectorState:
    """Unacked messages and reply matching (pure; see module docs)."""

    def __init__(self) -> None:
        self._unacked: dict[str, str] = {}  # msg_id -> frame, in send order

    def submit(self, message: Mapping[str, Any] | str) -> tuple[str, str]:
        """Register a message; ``(msg_id, frame)``. A message without ``msg_id`` gets one."""
        doc = json.loads(message) if isinstance(message, str) else dict(message)
        if not isinstance(doc, dict):
            raise ValueError("a message is a JSON object (an envelope)")
        msg_id = doc.get("msg_id")
        frame = message if isinstance(message, str) else None  # sent as given
        if not isinstance(msg_id, str) or not msg_id:
            msg_id = doc["msg_id"] = str(uuid.uuid4())
            frame = None
        if msg_id in self._unacked:
            raise ValueError(f"msg_id {msg_id!r} is already waiting for its ack")
        self._unacked[msg_id] = frame or json.dumps(doc, separators=(",", ":"))
        return msg_id, self._unacked[msg_id]

    @property
    def unacked(self) -> int:
        """Messages sent or to send, without an outcome yet."""
        return len(self._unacked)

    def resend(self) -> list[str]:
        """Every unacked frame, in send order (for a new connection)."""
        return list(self._unacked.values())

    def receive(self, frame: str | bytes) -> tuple[list[Outcome], list[str], bool]:
        """``(outcomes settled, other frames, retry)`` for one frame from the gateway.

        ``retry`` is true when the gateway said nothing was stored
        (``STORE_UNAVAILABLE``): the caller reconnects and resends.
        """
        try:
            decoded = _REPLY.decode(frame)
        except msgspec.DecodeError:
            return [], [frame.decode() if isinstance(frame, bytes) else frame], False
        replies = decoded if isinstance(decoded, list) else [decoded]
        outcomes: list[Outcome] = []
        retry = False
        for reply in replies:
            outcome, again = self._settle(reply)
            retry |= again
            if outcome is not None:
                outcomes.append(outcome)
        others = [] if outcomes or retry else [_text(frame)]
        return outcomes, others, retry

    def _settle(self, reply: _Reply) -> tuple[Outcome | None, bool]:
        payload = reply.payload
        if reply.msg_type == "ack":
            msg_id = payload.get("acknowledged_msg_id")
            if isinstance(msg_id, str) and self._unacked.pop(msg_id, None) is not None:
                return Acked(msg_id, bool(payload.get("duplicate"))), False
            return None, False
        details = payload.get("details")
        msg_id = details.get("msg_id") if isinstance(details, dict) else None
        if reply.msg_type != "error" or not isinstance(msg_id, str) or msg_id not in self._unacked:
            return None, False
        code = str(payload.get("code", ""))
        if code in RETRYABLE:
            return None, True
        del self._unacked[msg_id]
        field = details.get("field") if isinstance(details, dict) else None
        message = str(payload.get("message", ""))
        return Refused(msg_id, code, message, field if isinstance(field, str) else None), False


def _text(frame: str | bytes) -> str:
    return frame.decode() if isinstance(frame, bytes) else frame


class ConnectorClosed(Exception):
    """The connector was closed before the message got an outcome."""


class Connector:
    """An async ingest connector (see module docs). Use ``async with``.

    ``on_message`` receives frames routed to this client (subscriptions,
    targeted messages); ``heartbeat_s`` (``None``: no heartbeats) is the
    cadence of the heartbeats it sends as ``source``.
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        source: str = "tradewire-connector",
        window: int = DEFAULT_WINDOW,
        heartbeat_s: float | None = None,
        batch: bool = True,
        on_message: Callable[[str], None] | None = None,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        max_attempts: int | None = None,
    ) -> None:
        separator = "&" if "?" in url else "?"
        self.url = url + (f"{separator}batch=1" if batch else "")
        self.key = key
        self.source = source
        self.window = window
        self.heartbeat_s = heartbeat_s
        self.on_message = on_message
        self.state = ConnectorState()
        self.reconnects = 0
        self._sleep, self._jitter, self._max_attempts = sleep, jitter, max_attempts
        self._futures: dict[str, asyncio.Future[Outcome]] = {}
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._pending: deque[str] = deque()  # frames for the current connection
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._failure: BaseException | None = None

    async def __aenter__(self) -> Self:
        self._tasks = [asyncio.create_task(self._run(), name="connector")]
        if self.heartbeat_s is not None:
            self._tasks.append(asyncio.create_task(self._beat(), name="connector-heartbeat"))
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def send(self, message: Mapping[str, Any] | str) -> asyncio.Future[Outcome]:
        """Queue ``message``; the returned future resolves to :class:`Acked` or :class:`Refused`.

        Waits while ``window`` messages are unacked.
        """
        while self.state.unacked >= self.window:
            self._raise_failure()
            self._room.clear()
            await self._room.wait()
        self._raise_failure()
        msg_id, frame = self.state.submit(message)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._futures[msg_id] = future
        if self._connected.is_set():  # else: in the resend of the next connection
            self._pending.append(frame)
            self._wake.set()
        return future

    def outcome_of(self, msg_id: str) -> asyncio.Future[Outcome] | None:
        """The future of ``msg_id`` while it waits for its outcome, else ``None``."""
        return self._futures.get(msg_id)

    async def flush(self) -> None:
        """Wait until every message sent so far has its outcome."""
        pending = [f for f in self._futures.values() if not f.done()]
        if pending:
            await asyncio.wait(pending)
        self._raise_failure()

    async def close(self) -> None:
        """Stop; messages still unacked get :class:`ConnectorClosed`."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for future in self._futures.values():
            if not future.done():
                future.set_exception(ConnectorClosed("closed before an ack arrived"))
                future.exception()  # retrieved: nobody is forced to await it
        self._futures.clear()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    # -- pumps ---------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                headers = {"Authorization": f"Bearer {self.key}"}
                async with connect(
                    self.url, additional_headers=headers, max_size=None, compression=None
                ) as ws:
                    attempt = 0
                    await self._serve(ws)
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code == CLOSE_UNAUTHORIZED:
                    self._fail(PermissionError(exc.rcvd.reason))
                    return
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
                log.info("connector: cannot connect to %s: %s", self.url, exc)
            finally:
                self._ws = None
                self._connected.clear()
            if self._max_attempts is not None and attempt >= self._max_attempts:
                self._fail(ConnectionError(f"gave up connecting to {self.url}"))
                return
            await self._sleep(backoff_delay(attempt, jitter=self._jitter()))
            attempt += 1
            self.reconnects += 1

    def _fail(self, exc: BaseException) -> None:
        self._failure = exc
        self._room.set()
        for future in self._futures.values():
            if not future.done():
                future.set_exception(exc)
                future.exception()

    async def _serve(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._pending = deque(self.state.resend())  # every unacked message, in order
        self._connected.set()
        writer = asyncio.create_task(self._write(ws), name="connector-writer")
        try:
            async for frame in ws:
                if self._on_frame(frame):
                    await ws.close()  # nothing stored: reconnect and resend after a backoff
                    return
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await writer

    async def _write(self, ws: ClientConnection) -> None:
        """Send queued frames, several at once as one JSON array when they pile up."""
        pending = self._pending
        while True:
            while not pending:
                self._wake.clear()
                await self._wake.wait()
            frames = [pending.popleft() for _ in range(min(len(pending), FRAMES_PER_SEND))]
            await ws.send(frames[0] if len(frames) == 1 else "[" + ",".join(frames) + "]")

    def _on_frame(self, frame: str | bytes) -> bool:
        outcomes, others, retry = self.state.receive(frame)
        for outcome in outcomes:
            future = self._futures.pop(outcome.msg_id, None)
            if future is not None and not future.done():
                future.set_result(outcome)
        if outcomes:
            self._room.set()
        if self.on_message is not None:
            for other in others:
                self.on_message(other)
        return retry

    async def _beat(self) -> None:
        assert self.heartbeat_s is not None
        while True:
            await self._connected.wait()
            with contextlib.suppress(ValueError):
                await self.send(heartbeat(source=self.source))
            await self._sleep(self.heartbeat_s)


def refusals_by_code(outcomes: Iterable[Outcome]) -> dict[str, int]:
    """How many refusals per error code (for summaries)."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        if isinstance(outcome, Refused):
            counts[outcome.code] = counts.get(outcome.code, 0) + 1
    return counts
