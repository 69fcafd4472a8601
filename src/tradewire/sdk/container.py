"""The container side of user-event delivery: :class:`Container`.

Theory of operation
-------------------
A :class:`Container` holds two ZeroMQ sockets to one gateway: a DEALER to its
ROUTER (guaranteed path, port 5571) and a verbose XPUB to its SUB (fast path,
port 5570). The XPUB sees every SUBSCRIBE/UNSUBSCRIBE the gateway sends,
which is how the container knows which users have a live session right now
(exact user ids; the set is cleared when the link drops, because a killed
gateway never unsubscribes).

:meth:`Container.publish` picks the path from the priority, as the seed says:

============== ======================= =====================================
priority       user subscribed          user not subscribed
============== ======================= =====================================
INFORMATIONAL  XPUB (fire and forget)  dropped, counted ("dropped: no subscriber")
NORMAL         XPUB (fire and forget)  DEALER (guaranteed, acked)
CRITICAL       DEALER                  DEALER
============== ======================= =====================================

A guaranteed event is written to the durable outbox (:mod:`._outbox`)
*before* it is sent; ``publish`` returns once that write is committed, so an
event ``publish`` returned for survives a crash of the container. Concurrent
publishes share one transaction. One task, the *pump*, commits the outbox
batches and transmits what the :class:`~._outbox.ResendSchedule` says is
due: new events, backoff resends of events without an ack (same event_id),
and everything unfinished after the DEALER reconnects. The first ack QUEUED
stops the backoff resends; the event stays in the outbox until its final ack
(DELIVERED or ACK_ERROR) arrives, which removes it in the next transaction.
A container restarted on the same outbox file resends everything that has no
final ack; the gateway deduplicates by event_id and answers the current
status.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeAlias, cast

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from tradewire.delivery.backoff import BackoffPolicy
from tradewire.errors import StoreError
from tradewire.sdk._outbox import (
    DEFAULT_RESEND_POLICY,
    AckEffect,
    OutboxEntry,
    OutboxFile,
    ResendSchedule,
    Synchronous,
)
from tradewire.wire import (
    AckStatus,
    ChannelPreference,
    ChannelType,
    EventAck,
    EventType,
    Priority,
    Rejection,
    UserEvent,
    decode_event_ack,
    encode_fast_path,
    encode_user_event,
    validate_payload,
)
from tradewire.wire.payloads import EventPayload, encode_payload

__all__ = [
    "DEFAULT_ROUTER",
    "DEFAULT_SUB",
    "Container",
    "ContainerStats",
    "OutboxError",
    "PayloadLike",
    "Publication",
    "Route",
]

DEFAULT_ROUTER: Final = "tcp://127.0.0.1:5571"
"""The gateway's ROUTER (guaranteed path)."""
DEFAULT_SUB: Final = "tcp://127.0.0.1:5570"
"""The gateway's SUB (fast path)."""

PayloadLike: TypeAlias = Mapping[str, Any] | EventPayload | bytes
"""A payload: a JSON object (Decimals become strings), a typed model, or raw JSON bytes."""
AckCallback: TypeAlias = Callable[["Publication", EventAck], None]
_DROPPED: Final = "dropped: no subscriber"
_MAX_ACKS_PER_TURN: Final = 4096

log = logging.getLogger("tradewire.sdk")


class OutboxError(StoreError):
    """The container's outbox file could not be written; the event was not accepted."""


class Route(Enum):
    """Which path an event took."""

    FAST = "fast"
    """Over the XPUB to a live session: fire and forget, no ack."""
    GUARANTEED = "guaranteed"
    """Over the DEALER, via the durable outbox: acked QUEUED, then a final ack."""
    DROPPED = "dropped"
    """INFORMATIONAL for a user without a live session: not sent at all."""


class ContainerStats:
    """Counters of one :class:`Container` (plain ints, read them any time)."""

    def __init__(self) -> None:
        self.fast = 0
        self.dropped = 0
        self.guaranteed = 0
        self.acks = 0
        self.bad_acks = 0
        self.reconnects = 0


class Publication:
    """The outcome of one :meth:`Container.publish`.

    ``first_ack()`` and ``final()`` return the gateway's ``EventAck`` (the
    first one, usually QUEUED, and the final DELIVERED / ACK_ERROR). Events on
    the fast path or dropped get no ack: both return ``None`` at once and
    :attr:`outcome` says what happened.
    """

    def __init__(self, event_id: str, route: Route, outcome: str) -> None:
        self.event_id = event_id
        self.route = route
        self.outcome = outcome
        self.acks: list[EventAck] = []
        loop = asyncio.get_running_loop()
        self._first: asyncio.Future[EventAck | None] = loop.create_future()
        self._final: asyncio.Future[EventAck | None] = loop.create_future()
        self._callbacks: list[Callable[[EventAck], None]] = []
        if route is not Route.GUARANTEED:
            self._first.set_result(None)
            self._final.set_result(None)

    async def first_ack(self) -> EventAck | None:
        """The first ack (QUEUED once the gateway stored the event, or a final one)."""
        return await asyncio.shield(self._first)

    async def final(self) -> EventAck | None:
        """The final ack: DELIVERED (with the channel) or ACK_ERROR (with the reason)."""
        return await asyncio.shield(self._final)

    @property
    def done(self) -> bool:
        """Whether the final outcome is known."""
        return self._final.done()

    def add_callback(self, callback: Callable[[EventAck], None]) -> None:
        """Call ``callback(ack)`` for every ack from now on."""
        self._callbacks.append(callback)

    def _on_ack(self, ack: EventAck) -> None:
        self.acks.append(ack)
        self.outcome = _describe(ack)
        if not self._first.done():
            self._first.set_result(ack)
        if ack.status is not AckStatus.QUEUED and not self._final.done():
            self._final.set_result(ack)
        for callback in self._callbacks:
            _call_safely(callback, ack)

    def _abandon(self) -> None:
        for future in (self._first, self._final):
            future.cancel()


def _describe(ack: EventAck) -> str:
    if ack.status is AckStatus.DELIVERED:
        return f"delivered via {ack.delivered_via.name}"
    if ack.status is AckStatus.QUEUED:
        return "queued"
    return f"ack_error: {ack.error_message}"


def _monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Container:
    """A strategy container's connection to the gateway (async context manager).

    ``outbox`` is the SQLite file of the durable outbox (keep it across
    restarts: what it holds is resent on start). Use as::

        async with Container(Path("outbox.db")) as container:
            pub = await container.publish("alice", EventType.ORDER_FILLED,
                                          {"fill_price": Decimal("45000.1")},
                                          Priority.CRITICAL)
            ack = await pub.final()
    """

    def __init__(
        self,
        outbox: Path,
        *,
        router: str = DEFAULT_ROUTER,
        sub: str = DEFAULT_SUB,
        synchronous: Synchronous = "FULL",
        resend_policy: BackoffPolicy = DEFAULT_RESEND_POLICY,
        window: int = 256,
        recheck_seconds: float | None = 60.0,
        max_unconfirmed: int = 10_000,
        on_ack: AckCallback | None = None,
        clock: Callable[[], int] = _monotonic_ms,
        wall_clock: Callable[[], int] = _wall_ms,
    ) -> None:
        self.outbox_path = Path(outbox)
        self.router = router
        self.sub = sub
        self.stats = ContainerStats()
        self.max_unconfirmed = max_unconfirmed
        self._synchronous: Synchronous = synchronous
        recheck = None if recheck_seconds is None else int(recheck_seconds * 1000)
        self._schedule = ResendSchedule(resend_policy, window, recheck)
        self._on_ack = on_ack
        self._clock = clock
        self._wall_clock = wall_clock
        self._publications: dict[str, Publication] = {}
        self._subscriptions: set[str] = set()
        self._writes: list[tuple[OutboxEntry, Publication]] = []
        self._finished: list[str] = []
        self._batch: asyncio.Future[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tradewire-outbox")
        self._outbox: OutboxFile | None = None
        self._ctx: zmq.asyncio.Context | None = None
        self._sockets: list[zmq.asyncio.Socket] = []
        self._monitored: list[zmq.asyncio.Socket] = []
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._idle = asyncio.Event()
        self._connected = asyncio.Event()
        self._subscribed = asyncio.Condition()

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the outbox, connect both sockets and resend what the outbox holds."""
        outbox = await self._in_thread(OutboxFile, self.outbox_path, synchronous=self._synchronous)
        self._outbox = outbox
        restored: list[OutboxEntry] = await self._in_thread(outbox.pending)
        for entry in restored:
            publication = Publication(entry.event_id, Route.GUARANTEED, "restored")
            self._publications[entry.event_id] = publication
        self._schedule.add(restored)
        self._connect()
        self._tasks = [
            asyncio.create_task(self._pump(), name="tradewire-container-pump"),
            asyncio.create_task(self._read_acks(), name="tradewire-container-acks"),
            asyncio.create_task(self._read_subscriptions(), name="tradewire-container-xpub"),
            asyncio.create_task(self._watch_dealer(), name="tradewire-container-dealer-mon"),
            asyncio.create_task(self._watch_xpub(), name="tradewire-container-xpub-mon"),
        ]

    def _connect(self) -> None:
        self._ctx = zmq.asyncio.Context()
        self._dealer = self._socket(zmq.DEALER)
        self._dealer.connect(self.router)
        self._xpub = self._socket(zmq.XPUB)
        self._xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
        self._xpub.connect(self.sub)
        events = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
        self._dealer_mon = self._dealer.get_monitor_socket(events)
        self._xpub_mon = self._xpub.get_monitor_socket(events)
        self._sockets += [self._dealer_mon, self._xpub_mon]
        self._monitored = [self._dealer, self._xpub]
        self._dealer_sync: zmq.Socket[bytes] = zmq.Socket.shadow(self._dealer.underlying)

    def _socket(self, kind: int) -> zmq.asyncio.Socket:
        assert self._ctx is not None
        sock = self._ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        self._sockets.append(sock)
        return sock

    async def close(self) -> None:
        """Stop, commit what is pending (finished ids, accepted events) and close."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._outbox is not None:
            with contextlib.suppress(OutboxError):
                await self._commit()
            await self._in_thread(self._outbox.close)
            self._outbox = None
        self._close_sockets()
        self._executor.shutdown(wait=True)
        for publication in self._publications.values():
            publication._abandon()

    def _close_sockets(self) -> None:
        for sock in self._monitored:
            with contextlib.suppress(zmq.ZMQError):
                sock.disable_monitor()
        self._monitored = []
        for sock in reversed(self._sockets):
            sock.close(0)
        self._sockets = []
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    # -- public API ------------------------------------------------------------

    async def publish(
        self,
        user_id: str,
        event_type: EventType | str | int,
        payload: PayloadLike,
        priority: Priority | str | int = Priority.NORMAL,
        channels: Iterable[ChannelType | ChannelPreference | str] = (),
        event_id: str | None = None,
    ) -> Publication:
        """Send one user event on the path its priority and the user's presence pick.

        Returns once a guaranteed event is durable in the outbox (or at once
        for the fast path). Raises :class:`~tradewire.errors.WireError` for a
        payload that does not fit ``event_type`` and :class:`OutboxError` if
        the outbox cannot be written.
        """
        event = self._event(user_id, event_type, payload, priority, channels, event_id)
        if event.priority is Priority.CRITICAL or not self.is_subscribed(user_id):
            if event.priority is Priority.INFORMATIONAL:
                self.stats.dropped += 1
                return Publication(event.event_id, Route.DROPPED, _DROPPED)
            return await self._publish_guaranteed(event)
        # XPUB never blocks: at its high-water mark it drops, like the gateway's SUB would
        _send_now(self._xpub, list(encode_fast_path(event)))
        self.stats.fast += 1
        return Publication(event.event_id, Route.FAST, "sent: fast path")

    def publication(self, event_id: str) -> Publication | None:
        """The publication of a guaranteed event still waiting for its final ack."""
        return self._publications.get(event_id)

    def is_subscribed(self, user_id: str) -> bool:
        """Whether the gateway currently subscribes to ``user_id``'s topic."""
        return user_id in self._subscriptions

    async def wait_subscribed(self, user_id: str) -> None:
        """Wait until the gateway subscribes to ``user_id`` (a session opened)."""
        async with self._subscribed:
            await self._subscribed.wait_for(lambda: user_id in self._subscriptions)

    async def wait_connected(self) -> None:
        """Wait until the DEALER completed a handshake with the gateway."""
        await self._connected.wait()

    async def drain(self) -> None:
        """Wait until every guaranteed event has its final ack."""
        while self._writes or len(self._schedule):
            self._idle.clear()
            await self._idle.wait()

    @property
    def pending(self) -> int:
        """Guaranteed events that have no final ack yet (outbox rows)."""
        return len(self._schedule) + len(self._writes)

    @property
    def resends(self) -> int:
        """Transmissions repeated after an ack timeout or a recheck."""
        return self._schedule.resends

    # -- building events -------------------------------------------------------

    def _event(
        self,
        user_id: str,
        event_type: EventType | str | int,
        payload: PayloadLike,
        priority: Priority | str | int,
        channels: Iterable[ChannelType | ChannelPreference | str],
        event_id: str | None,
    ) -> UserEvent:
        kind = _enum(EventType, event_type)
        data = _payload_bytes(payload)
        rejection = validate_payload(kind, data)
        if rejection is not None:
            rejection.raise_()
        return UserEvent(
            user_id=user_id,
            event_id=event_id or str(uuid.uuid4()),
            timestamp_ms=self._wall_clock(),
            event_type=kind,
            payload=data,
            priority=_enum(Priority, priority),
            channels=tuple(_preference(c) for c in channels),
        )

    async def _publish_guaranteed(self, event: UserEvent) -> Publication:
        known = self._publications.get(event.event_id)
        if known is not None:
            return known  # same event_id again: it is already on its way
        while self._schedule.unconfirmed() + len(self._writes) >= self.max_unconfirmed:
            self._room.clear()
            await self._room.wait()
        publication = Publication(event.event_id, Route.GUARANTEED, "pending")
        self._publications[event.event_id] = publication
        self._writes.append((OutboxEntry(event.event_id, encode_user_event(event)), publication))
        self.stats.guaranteed += 1
        if self._batch is None:
            self._batch = asyncio.get_running_loop().create_future()
        batch = self._batch
        self._wake.set()
        await asyncio.shield(batch)
        return publication

    # -- the pump ----------------------------------------------------------------

    async def _pump(self) -> None:
        while True:
            await self._wait_for_work()
            if self._writes or self._finished:
                with contextlib.suppress(OutboxError):  # its publishers got the error
                    await self._commit()
            self._transmit_due()
            if not self._writes and not len(self._schedule):
                self._idle.set()

    async def _wait_for_work(self) -> None:
        if self._writes or self._finished:
            return
        self._wake.clear()
        deadline = self._schedule.next_deadline()
        timeout = None if deadline is None else max(0.0, (deadline - self._clock()) / 1000)
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the
        # cancellation that close() sends when the wake-up lands at the same time
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def _commit(self) -> None:
        """One outbox transaction for everything queued since the last one."""
        writes, self._writes = self._writes, []
        finished, self._finished = self._finished, []
        batch, self._batch = self._batch, None
        assert self._outbox is not None
        entries = [entry for entry, _ in writes]
        try:
            await asyncio.shield(self._in_thread(self._outbox.commit, entries, finished))
        except sqlite3.Error as exc:
            self._finished += finished  # removed by a later transaction, or resent on restart
            for entry in entries:
                self._publications.pop(entry.event_id, None)
            error = OutboxError(f"outbox {self.outbox_path} could not be written: {exc}")
            if batch is not None:
                batch.set_exception(error)
                batch.exception()  # the publishers re-raise it; no "never retrieved" noise
            raise error from exc
        self._schedule.add(entries)
        if batch is not None:
            batch.set_result(None)

    def _transmit_due(self) -> None:
        now = self._clock()
        for entry in self._schedule.due(now):
            if not _send_now(self._dealer, [entry.frame]):
                self._schedule.not_sent(entry.event_id, now)

    # -- readers -----------------------------------------------------------------

    async def _read_acks(self) -> None:
        while True:
            frames = [await self._dealer.recv()]
            while len(frames) < _MAX_ACKS_PER_TURN:
                try:
                    frames.append(self._dealer_sync.recv(zmq.NOBLOCK))
                except zmq.Again:
                    break
            now = self._clock()
            for frame in frames:
                self._on_ack_frame(frame, now)

    def _on_ack_frame(self, frame: bytes, now: int) -> None:
        ack = decode_event_ack(frame)
        if isinstance(ack, Rejection):
            self.stats.bad_acks += 1
            return
        self.stats.acks += 1
        effect = self._schedule.on_ack(ack, now)
        if effect is AckEffect.UNKNOWN:
            return
        publication = self._publications[ack.event_id]
        if effect is AckEffect.FINAL:
            del self._publications[ack.event_id]
            self._finished.append(ack.event_id)
            self._wake.set()
        if effect is not AckEffect.REPEAT:
            self._room.set()
            self._wake.set()  # the window has room again
            publication._on_ack(ack)
            if self._on_ack is not None:
                _call_safely(functools.partial(self._on_ack, publication), ack)

    async def _read_subscriptions(self) -> None:
        while True:
            message = await self._xpub.recv()
            if len(message) < 2 or message[0] not in (0, 1):
                continue  # an empty topic would be "every user": never a user id
            user_id = message[1:].decode("utf-8", "replace")
            if message[0] == 1:
                self._subscriptions.add(user_id)
                async with self._subscribed:
                    self._subscribed.notify_all()
            else:
                self._subscriptions.discard(user_id)

    async def _watch_dealer(self) -> None:
        handshakes = 0
        while True:
            event = await self._monitor_event(self._dealer_mon)
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                handshakes += 1
                self._connected.set()
                if handshakes > 1:
                    # a restarted gateway only learns where final acks go from a resend
                    self.stats.reconnects += 1
                    self._schedule.reconnected()
                    self._wake.set()

    async def _watch_xpub(self) -> None:
        while True:
            if await self._monitor_event(self._xpub_mon) == zmq.EVENT_DISCONNECTED:
                # a killed gateway never unsubscribes; its successor resubscribes
                self._subscriptions.clear()

    @staticmethod
    async def _monitor_event(monitor: zmq.asyncio.Socket) -> int:
        return int(parse_monitor_message(await monitor.recv_multipart())["event"])

    async def _in_thread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))


def _send_now(sock: zmq.asyncio.Socket, frames: list[bytes]) -> bool:
    """Send without blocking; ``False`` if the socket's buffer is full.

    Through the asyncio socket on purpose: a send on a synchronous shadow
    would consume the edge-triggered readiness signal of the reader awaiting
    on the same socket, and that reader would then sleep forever.
    """
    future = cast("asyncio.Future[None]", sock.send_multipart(frames, zmq.NOBLOCK))
    if not future.done():  # pyzmq tries NOBLOCK sends at once; defensive
        future.cancel()
        return False
    return future.exception() is None


def _call_safely(callback: Callable[[EventAck], None], ack: EventAck) -> None:
    try:
        callback(ack)
    except Exception:  # a caller's callback must not stop the ack reader
        log.exception("ack callback raised", extra={"event_id": ack.event_id})


def _enum(kind: type[Any], value: Any) -> Any:
    try:
        return kind[value.upper()] if isinstance(value, str) else kind(value)
    except (KeyError, ValueError):
        names = ", ".join(m.name for m in kind)
        raise ValueError(f"{value!r} is not a {kind.__name__} (one of {names})") from None


def _preference(value: ChannelType | ChannelPreference | str) -> ChannelPreference:
    if isinstance(value, ChannelPreference):
        return value
    return ChannelPreference(_enum(ChannelType, value))


def _payload_bytes(payload: PayloadLike) -> bytes:
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    if isinstance(payload, EventPayload):
        return encode_payload(payload)
    return encode_payload(dict(payload))
