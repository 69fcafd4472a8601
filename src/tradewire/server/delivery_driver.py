"""The asyncio driver of the delivery engine: ZeroMQ in, sessions out.

Theory of operation
-------------------
One task, :meth:`DeliveryDriver.run`, owns the :class:`DeliveryEngine`; no
other coroutine touches it. Everything that happens (frames from the ROUTER
and the SUB, sessions opening, closing and acking, channel results, timers)
becomes an *input* on one queue. Each turn the driver takes **every** input
queued, feeds them all to the engine, and carries out the resulting actions
in two phases:

1. every store write of the turn (``Persist``, ``RecordAttempt``,
   ``Settle``) goes to the store in one ``append_many``: one group commit;
2. only then the sends, in order: ``SendTo`` pushes to live sessions or
   starts a channel adapter; ``SendAck`` writes an ``EventAck`` to the
   container's DEALER.

So nothing is acknowledged before it is durable, and one commit is shared
by everything that arrived while the previous turn committed. The pumps stop
reading ZeroMQ while ``MAX_QUEUED_INPUTS`` wait (backpressure into the
sockets' queues), so a turn stays bounded and a session's writer gets to run
between turns of a flood. Actions that
the engine returns in reaction (``persisted`` after a commit, the result of
a session push) are carried out in the same turn. INFORMATIONAL events never
touch the store.

The ROUTER is read without futures: the loop calls a reader on the socket's
FD, which drains it with non-blocking reads, and the driver sleeps on a bare
future that ``_put`` resolves (no task, no ``wait_for`` per turn). ZeroMQ's
FD is edge-triggered, so a frame is never left unread while the driver
sleeps only if every read drains to an empty ``EVENTS`` and every batch of
sends is followed by a look at ``EVENTS`` (a send can take the FD's signal).

The SUB pump drains its socket in batches (one await, then non-blocking
reads) and queues each batch as one input. The driver hands most of its
INFORMATIONAL events straight to the user's sessions, without the engine's
pending record (``DeliveryEngine.may_skip_record``: the engine decides,
and counts them with ``settle_unrecorded``); the rest of the batch goes
through ``accept`` like any frame. Each such envelope is encoded once for
all of the user's sessions, and a session's writer wakes once per batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeAlias, cast

import zmq
import zmq.asyncio
from prometheus_client import Counter as MetricCounter

from tradewire.delivery import (
    AckStatus,
    Action,
    Channel,
    ChannelPreference,
    ChannelType,
    Delivered,
    DeliveryEngine,
    DeliveryOutcome,
    DeliveryState,
    Event,
    LocalPresence,
    PermanentFailure,
    Persist,
    Priority,
    RecordAttempt,
    Retryable,
    SendAck,
    SendTo,
    Settle,
)
from tradewire.delivery.config import DeliveryConfig
from tradewire.server.delivery_store import (
    RESTORE_ONE_SQL,
    RESTORE_SQL,
    DeliveryProjector,
    attempt_record,
    domain_event,
    settle_record,
    stored_delivery,
    user_event_record,
)
from tradewire.server.intake_journal import IntakeJournal
from tradewire.server.metrics import GatewayMetrics
from tradewire.server.session_ws import LiveSession
from tradewire.sessions.protocol import encode_user_event
from tradewire.sessions.registry import SessionRegistry
from tradewire.store import Record
from tradewire.store.sqlite import SqliteStore
from tradewire.wire import (
    EventAck,
    Rejection,
    UserEvent,
    decode_fast_path,
    decode_user_event,
    encode_event_ack,
)

__all__ = ["DeliveryDriver", "DeliveryProjector"]

log = logging.getLogger("tradewire.delivery")

MAX_QUEUED_INPUTS = 512
"""The pumps stop reading ZeroMQ while this many inputs wait for the driver.

This bounds a turn (and so how long the loop is held, and how many events one
turn pushes into a session's outbox) and leaves the excess in the sockets'
queues, where the HWM applies, instead of in an unbounded list.
"""
SENDER_MEMORY = 1_000_000
HOLD_ATTEMPTS_MS = 2
"""Attempt rows with nothing else to write wait this long for the next turn's commit.

At one event at a time, the next event usually arrives within this: its
record and the previous event's attempt rows then share one commit (one
fsync per event instead of two).
"""
INTAKE_POLL_NS = 100_000
"""With a journal, a turn looks at the ROUTER this often (at most) while it works.

A container's QUEUED waits only for the journal, but the ROUTER is read on
the loop: without a look inside the turn, an event arriving as a turn begins
waits for the whole turn (hundreds of microseconds per event it handles).
"""
_NONE_WRITTEN: tuple[list[str], list[str]] = ([], [])  # read only: no write, no coroutine
_NOBLOCK = int(zmq.NOBLOCK)  # ints: the enums cost a conversion per call
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class _Frame:
    identity: bytes | None  # None: came over the SUB fast path
    event: Event
    frame: bytes | None = None  # as received: stored as is rather than encoded again


@dataclass(frozen=True, slots=True)
class _SubBatch:
    events: list[UserEvent]  # decoded fast-path frames of users with a live session, in order


@dataclass(frozen=True, slots=True)
class _Opened:
    session: LiveSession


@dataclass(frozen=True, slots=True)
class _Closed:
    session: LiveSession


@dataclass(frozen=True, slots=True)
class _Acked:
    user_id: str
    event_ids: tuple[str, ...]
    channel: ChannelType = ChannelType.WEB


@dataclass(frozen=True, slots=True)
class _Activity:
    user_id: str
    channel: ChannelType
    for_ms: int


@dataclass(frozen=True, slots=True)
class _Result:
    event_id: str
    channel: ChannelType
    attempt: int
    outcome: Delivered | Retryable | PermanentFailure


_Input: TypeAlias = _Frame | _SubBatch | _Opened | _Closed | _Acked | _Result | _Activity


class DeliveryDriver:
    """Pumps the ROUTER and SUB sockets and live sessions through the engine."""

    def __init__(
        self,
        *,
        store: SqliteStore,
        router: zmq.asyncio.Socket,
        sub: zmq.asyncio.Socket,
        metrics: GatewayMetrics,
        config: DeliveryConfig,
        channels: dict[ChannelType, Channel] | None = None,
        presence: LocalPresence | None = None,
        max_frame_bytes: int,
        journal: IntakeJournal | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.store = store
        self.router = router
        self.sub = sub
        self.metrics = metrics
        self.channels = dict(channels or {})
        self.presence = presence or LocalPresence()
        self.engine = DeliveryEngine(config, self.presence)
        self.sessions: SessionRegistry[LiveSession] = SessionRegistry()
        self.max_frame_bytes = max_frame_bytes
        self.journal = journal
        if journal is not None:
            metrics.journal_unreleased.set_function(journal.unreleased)
        self.clock = clock
        # event_id -> journal segment, for journaled events the store does not hold yet
        self._journaled: dict[str, int] = {}
        self._early_acked: set[str] = set()  # QUEUED went out from the journal: not again
        # user_id -> [frames, CRITICAL frames] queued for the engine and not fed to it yet
        self._ahead: dict[str, list[int]] = {}
        self._next_intake_poll = 0  # perf_counter_ns of the next look at the ROUTER in a turn
        self._inputs: list[_Input] = []
        self._queued = 0  # frames in self._inputs (a _SubBatch holds many)
        self._waiter: asyncio.Future[None] | None = None  # run() sleeps on it; _put() wakes it
        self._drained = asyncio.Event()  # set when the driver takes the queued inputs
        self._senders: OrderedDict[str, bytes] = OrderedDict()
        self._router_sync: zmq.Socket[bytes] = zmq.Socket.shadow(router.underlying)
        self._sub_sync: zmq.Socket[bytes] = zmq.Socket.shadow(sub.underlying)
        self._channel_tasks: set[asyncio.Task[None]] = set()
        self._held_attempts: list[Persist | RecordAttempt | Settle] = []
        self._frames: dict[str, bytes] = {}  # received frames of events to persist this turn
        # event_id -> seq of its stored record, for the unsettled events: their attempt and
        # settle records carry it (keys that append; see delivery_store)
        self._event_seqs: dict[str, int] = {}
        self._activity: dict[tuple[str, ChannelType], int] = {}
        self._router_sent = False  # a frame went out on the shadow since the last re-arm
        self._router_stopped: asyncio.Future[None] | None = None  # while pump_router runs
        self._router_frames = metrics.zmq_frames.labels(socket="router")
        self._router_fd = -1  # the ROUTER's FD, once pump_router runs
        self._router_watched = False  # the loop calls _read_router when the FD signals
        self._router_paused = False  # the queue was full: run() reads again once it takes it
        # tradewire_deliveries_settled{priority="INFORMATIONAL"}, by final state
        self._settled_counters: dict[DeliveryState, MetricCounter] = {}

    # -- inputs from the outside (any coroutine) ---------------------------

    def _put(self, item: _Input, frames: int = 1) -> None:
        self._inputs.append(item)
        self._queued += frames
        if self._waiter is not None:
            _release(self._waiter)

    def submit(self, event: Event) -> None:
        """Deliver ``event`` like a container's frame, but with no sender: no EventAck is sent.

        For events the gateway makes itself (the ingest bridge).
        """
        self._count_ahead(event)
        self._put(_Frame(None, event))

    def session_opened(self, session: LiveSession) -> None:
        """SessionListener: a live session opened."""
        self._put(_Opened(session))

    def session_closed(self, session: LiveSession) -> None:
        """SessionListener: a live session closed."""
        self._put(_Closed(session))

    def session_acked(self, session: LiveSession, event_ids: tuple[str, ...]) -> None:
        """SessionListener: the client acked events."""
        self._put(_Acked(session.user_id, event_ids))

    def channel_acked(self, user_id: str, channel: ChannelType, event_ids: tuple[str, ...]) -> None:
        """The user confirmed events on an external channel (Telegram's Acknowledge button)."""
        self._put(_Acked(user_id, event_ids, channel))

    def channel_active(self, user_id: str, channel: ChannelType, for_ms: int) -> None:
        """The user is active on ``channel`` (wrote to the bot) for the next ``for_ms``.

        The channel counts as an open session of the user (ACTIVE_SESSION,
        only_if_active) until the window passes without new activity.
        """
        self._put(_Activity(user_id, channel, for_ms))

    # -- tasks ---------------------------------------------------------------

    async def restore(self) -> None:
        """Load unfinished events (and recent finished ones, for dedup) from the store."""
        recent = max(0, await self._max_delivery_seq() - self.engine.config.dedup_capacity)
        after = 0
        while rows := await self.store.query(RESTORE_SQL, (after, recent, 2000)):
            stored = [stored_delivery(row[:6]) for row in rows]
            after = int(rows[-1][6])
            for delivery, row in zip(stored, rows, strict=True):
                if delivery.state is DeliveryState.PERSISTED:
                    self._event_seqs[delivery.event.event_id] = int(row[6])
            actions = self.engine.restore(stored, self.clock())
            await self._carry_out(actions)
        replayed = await self._replay_journal()
        log.info(
            "delivery restored",
            extra={"pending": self.engine.pending_count(), "journal_replayed": replayed},
        )

    async def _replay_journal(self) -> int:
        """Feed the frames the journal held at start to the engine, then drop them.

        They were acked QUEUED; the store may hold them already (the engine's
        dedup window and the store's key answer those), or not, when the
        gateway stopped between the ack and the commit.
        """
        if self.journal is None:
            return 0
        count = 0
        for frames in self.journal.replay():
            for start in range(0, len(frames), MAX_QUEUED_INPUTS):
                now = self.clock()
                actions: list[Action] = []
                for frame in frames[start : start + MAX_QUEUED_INPUTS]:
                    decoded = decode_user_event(frame, max_size=self.max_frame_bytes)
                    if isinstance(decoded, Rejection):  # cannot be: only valid frames are journaled
                        log.warning("intake journal: undecodable entry skipped")
                        continue
                    actions += self._feed_frame(_Frame(None, domain_event(decoded), frame), now)
                    count += 1
                await self._carry_out(actions)
        self.journal.drop_replayed()
        return count

    async def _max_delivery_seq(self) -> int:
        rows = await self.store.query("SELECT max(seq) FROM deliveries")
        return int(rows[0][0] or 0)

    async def run(self) -> None:
        """The one task that drives the engine (until cancelled)."""
        while True:
            await self._wait_for_input()
            inputs, self._inputs = self._inputs, []
            self._queued = 0
            self._drained.set()
            self._resume_router()
            now = self.clock()
            held, self._held_attempts = self._held_attempts, []
            actions: list[Action] = list(held)  # held attempt rows share this turn's commit
            poll = self._poll_intake
            for item in inputs:
                actions += self._feed(item, now)
                poll()
            self._expire_activity(now)
            actions += self.engine.tick(now)
            await self._carry_out(actions, hold=not held)

    async def _wait_for_input(self) -> None:
        """Sleep until an input is queued or the next deadline passes.

        A bare future that ``_put`` resolves and at most one timer: no task per
        turn (as ``asyncio.wait_for`` would make), and the driver resumes on the
        very next loop iteration after the wake-up.
        """
        if self._inputs:
            return
        held = self.clock() + HOLD_ATTEMPTS_MS if self._held_attempts else None
        deadline = min(
            (
                d
                for d in (self.engine.next_deadline(), held, *self._activity.values())
                if d is not None
            ),
            default=None,
        )
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None
        if deadline is not None:
            timer = loop.call_later(max(0.0, (deadline - self.clock()) / 1000), _release, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def pump_router(self) -> None:
        """Read DEALER frames as they come; answer bad ones at once with ACK_ERROR.

        No future per read: the loop calls :meth:`_read_router` when the
        ROUTER's FD signals, and it drains the socket with non-blocking reads.
        Runs until cancelled; a failure to read ends it with that error.
        """
        self._router_fd = self._router_sync.FD
        stopped = self._router_stopped = asyncio.get_running_loop().create_future()
        self._read_router()  # what was queued before the reader existed: the FD will not say
        try:
            await stopped
        finally:
            self._router_stopped = None
            self._watch_router(False)

    def _read_router(self) -> None:
        """Drain the ROUTER: until ZeroMQ holds no message, or the input queue is full.

        ZeroMQ's FD is edge-triggered: it signals when the socket's state
        changes, not while a message waits. So this reads until ``EVENTS``
        shows no ``POLLIN`` (then the next frame signals the FD again), and
        runs again after every send (:meth:`_rearm_router`), which can take
        the FD's signal. With the queue full the reader is off (backpressure
        into the socket's queue) until ``run`` takes the queue and reads again.
        """
        stopped = self._router_stopped
        if stopped is None or stopped.done():
            return
        try:
            while True:
                space = MAX_QUEUED_INPUTS - self._queued
                if space <= 0:
                    self._router_paused = True
                    self._watch_router(False)
                    return
                self._router_sent = False
                batch, emptied = _drain(self._router_sync, space)
                if batch:
                    self._router_frames.inc(len(batch))
                    self._take_router_batch(batch)
                if emptied and not self._router_sent:  # a rejection sent: look again
                    break
            self._watch_router(True)
        except Exception as exc:  # ends pump_router with it, as an awaited read would
            self._watch_router(False)
            stopped.set_exception(exc)

    def _watch_router(self, on: bool) -> None:
        if on is self._router_watched:
            return
        loop, fd = asyncio.get_running_loop(), self._router_fd
        if on:
            loop.add_reader(fd, self._read_router)
        else:
            loop.remove_reader(fd)
        self._router_watched = on

    def _poll_intake(self) -> None:
        """Inside a turn, every ``INTAKE_POLL_NS`` at most: journal and ack what waits.

        Only with a journal (without one, nothing read here would be acked
        before the next turn anyway). The engine is between two calls here,
        as when the reader runs between two awaits of the turn.
        """
        if self.journal is None:
            return
        now = time.perf_counter_ns()
        if now < self._next_intake_poll:
            return
        self._next_intake_poll = now + INTAKE_POLL_NS
        if self._router_watched and _readable(self._router_sync):
            self._read_router()

    def _resume_router(self) -> None:
        """The driver took the queue: read what waited in the ROUTER meanwhile."""
        if self._router_paused:
            self._router_paused = False
            asyncio.get_running_loop().call_soon(self._read_router)

    def _take_router_batch(self, batch: list[list[bytes]]) -> None:
        """Decode a drained batch; journal and ack what surely gets stored; queue it all.

        With a journal, each event the engine will surely store
        (:meth:`DeliveryEngine.surely_admits`, counting the user's events
        queued ahead of it) is appended to it with the rest of the batch in
        one write (and sync), and acked QUEUED at once; the engine and the
        store take it after, in order with the batch's other frames. A resend
        of an event the journal holds but the store not yet is answered
        QUEUED at once, after the batch's write. Everything else waits for
        the store's commit, as without a journal.
        """
        journal, engine, ahead = self.journal, self.engine, self._ahead
        items: list[_Frame] = []
        logged: list[_Frame] = []
        resent: list[tuple[bytes, str]] = []
        for parts in batch:
            item = self._on_router_message(parts)
            if item is None:
                continue
            event = item.event
            if journal is not None and item.identity is not None:
                if event.event_id in self._journaled:
                    resent.append((item.identity, event.event_id))
                    continue
                counts = ahead.get(event.user_id)
                n, critical = (counts[0], counts[1]) if counts is not None else (0, 0)
                if engine.surely_admits(event, n, critical):
                    self._journaled[event.event_id] = -1  # its segment, once written
                    logged.append(item)
            self._count_ahead(event)
            items.append(item)
        if logged:
            self._journal_and_ack(logged)
        for identity, event_id in resent:
            self._send_queued(identity, event_id)
        for item in items:
            self._put(item)

    def _journal_and_ack(self, logged: list[_Frame]) -> None:
        assert self.journal is not None
        try:
            segment = self.journal.append([cast(bytes, item.frame) for item in logged])
        except OSError:  # (a full disk): these wait for the store's commit instead
            log.exception("intake journal: append failed; acking after the store's commit")
            for item in logged:
                del self._journaled[item.event.event_id]
            return
        self.metrics.journaled.inc(len(logged))
        for item in logged:
            event_id = item.event.event_id
            self._journaled[event_id] = segment
            self._early_acked.add(event_id)
            self._send_queued(cast(bytes, item.identity), event_id)

    def _send_queued(self, identity: bytes, event_id: str) -> None:
        ack = EventAck(event_id=event_id, status=AckStatus.QUEUED)  # the defaults: no error, via -
        self._send_frame(identity, encode_event_ack(ack))

    def _count_fed(self, event: Event | UserEvent) -> None:
        """``event``, counted by :meth:`_count_ahead`, reaches the engine now."""
        counts = self._ahead.get(event.user_id)
        if counts is not None:
            counts[0] -= 1
            counts[1] -= event.priority is Priority.CRITICAL
            if counts[0] <= 0:
                del self._ahead[event.user_id]

    def _count_ahead(self, event: Event | UserEvent) -> None:
        counts = self._ahead.get(event.user_id)
        if counts is None:
            counts = self._ahead[event.user_id] = [0, 0]
        counts[0] += 1
        if event.priority is Priority.CRITICAL:
            counts[1] += 1

    def _on_router_message(self, parts: list[bytes]) -> _Frame | None:
        if len(parts) != 2:
            self.metrics.rejected.labels(endpoint="zmq_router", code="WRONG_FRAME_COUNT").inc()
            if len(parts) > 2 or len(parts) == 1:
                return None
        identity, frame = parts[0], parts[-1]
        decoded = decode_user_event(frame, max_size=self.max_frame_bytes)
        if isinstance(decoded, Rejection):
            self.metrics.rejected.labels(endpoint="zmq_router", code=decoded.code).inc()
            self._send_rejection(identity, decoded)
            return None
        self._remember_sender(decoded.event_id, identity)
        return _Frame(identity, domain_event(decoded), frame)

    def _send_rejection(self, identity: bytes, rejection: Rejection) -> None:
        where = f" (field {rejection.field})" if rejection.field else ""
        ack = EventAck(
            event_id=rejection.msg_id or "",
            status=AckStatus.ACK_ERROR,
            error_message=f"{rejection.code}: {rejection.message}{where}",
        )
        self._send_frame(identity, encode_event_ack(ack))

    async def pump_sub(self) -> None:
        """Read fast-path frames; deliver only to users with a live session."""
        counter = self.metrics.zmq_frames.labels(socket="sub")
        while True:
            await self._room()
            batch = await _recv_batch(self.sub, self._sub_sync, self._space())
            counter.inc(len(batch))
            events: list[UserEvent] = []
            for parts in batch:
                decoded = decode_fast_path(parts, max_size=self.max_frame_bytes)
                if isinstance(decoded, Rejection):
                    self.metrics.rejected.labels(endpoint="zmq_sub", code=decoded.code).inc()
                elif not self.sessions.is_active(decoded.user_id):
                    # a SUB subscription is a prefix: "u1" also matches "u10"
                    self.metrics.rejected.labels(endpoint="zmq_sub", code="NO_SESSION").inc()
                else:
                    events.append(decoded)
                    if decoded.priority is not Priority.INFORMATIONAL:
                        self._count_ahead(decoded)  # (it can take room in the user's queue)
            if events:  # one input (and one wake-up of the driver) per batch
                self._put(_SubBatch(events), len(events))

    async def _room(self) -> None:
        """Backpressure for the pumps: wait until the driver took the queued inputs."""
        while self._queued >= MAX_QUEUED_INPUTS:
            self._drained.clear()
            await self._drained.wait()

    def _space(self) -> int:
        return max(1, MAX_QUEUED_INPUTS - self._queued)

    # -- engine inputs ------------------------------------------------------

    def _feed(self, item: _Input, now: int) -> list[Action]:
        engine = self.engine
        if isinstance(item, _SubBatch):
            return self._feed_sub(item.events, now)
        if isinstance(item, _Frame):
            self._count_fed(item.event)
            return self._feed_frame(item, now)
        if isinstance(item, _Acked):
            actions: list[Action] = []
            for event_id in item.event_ids:
                actions += engine.client_acked(event_id, item.channel, now)
            return actions
        if isinstance(item, _Activity):
            return self._active(item, now)
        if isinstance(item, _Result):
            return engine.attempt_result(
                item.event_id, item.channel, item.attempt, item.outcome, now
            )
        if isinstance(item, _Opened):
            return self._open(item.session, now)
        return self._close(item.session, now)

    def _feed_frame(self, item: _Frame, now: int) -> list[Action]:
        event_id = item.event.event_id
        accepted = self.engine.accept(item.event, now)
        if any(isinstance(a, Persist) for a in accepted):
            if item.frame is not None:
                self._frames[event_id] = item.frame  # taken by _write this turn
        elif item.identity is not None and event_id in self._journaled:
            self._release_journaled(event_id)  # journaled but not stored after all: nothing to keep
        return accepted

    def _release_journaled(self, event_id: str) -> None:
        self._release_segments({self._journaled.pop(event_id, -1): 1})

    def _release_segments(self, counts: Mapping[int, int]) -> None:
        """Release ``count`` entries of each journal segment (-1: not journaled, or not yet)."""
        if self.journal is None:
            return
        for segment, count in counts.items():
            if segment >= 0:
                self.journal.release(segment, count)

    def _feed_sub(self, events: list[UserEvent], now: int) -> list[Action]:
        """Fast-path frames, in order: INFORMATIONAL ones straight to the sessions.

        An INFORMATIONAL event the engine lets skip its pending record (the
        common case, see ``DeliveryEngine.may_skip_record``) is encoded once,
        pushed to each of the user's live sessions and settled at once, with
        the engine's counters and ``/metrics`` counted as the full path would;
        every other frame goes through ``accept``.
        """
        engine = self.engine
        actions: list[Action] = []
        delivered = dropped = 0
        for wire in events:
            if wire.priority is Priority.INFORMATIONAL and engine.may_skip_record(
                wire.event_id, wire.user_id, _domain_channels(wire)
            ):
                taken = self._push_informational(wire, now)
                engine.settle_unrecorded(wire.event_id, delivered=taken)
                delivered += taken
                dropped += not taken
            else:
                if wire.priority is not Priority.INFORMATIONAL:
                    self._count_fed(wire)
                actions += engine.accept(domain_event(wire), now)
        self._count_settled(DeliveryState.DELIVERED, delivered)  # once per batch, not per event
        self._count_settled(DeliveryState.DROPPED, dropped)
        return actions

    def _push_informational(self, wire: UserEvent, now: int) -> bool:
        """Push one envelope (encoded once) to every live session of the user; any took it?"""
        data = encode_user_event(
            event_id=wire.event_id,
            user_id=wire.user_id,
            event_type=wire.event_type,
            priority=Priority.INFORMATIONAL,
            timestamp_ms=wire.timestamp_ms,
            payload=wire.payload,
            attempt=1,
            now_ms=now,
        )
        taken = False
        for session in self.sessions.sessions_of(wire.user_id):
            taken = session.push(data, guaranteed=False) or taken
        return taken

    def _count_settled(self, state: DeliveryState, count: int) -> None:
        if not count:
            return  # a series appears on first use, as with labels() in _write
        counter = self._settled_counters.get(state)
        if counter is None:
            counter = self.metrics.deliveries.labels(priority="INFORMATIONAL", state=state.value)
            self._settled_counters[state] = counter
        counter.inc(count)

    def _open(self, session: LiveSession, now: int) -> list[Action]:
        if self.sessions.add(session.user_id, session):
            self.sub.subscribe(session.user_id.encode())
        self.metrics.sessions.inc()
        if self.presence.open(session.user_id, ChannelType.WEB):
            return self.engine.session_opened(session.user_id, ChannelType.WEB, now)
        return []

    def _close(self, session: LiveSession, now: int) -> list[Action]:
        if self.sessions.remove(session.user_id, session):
            self.sub.unsubscribe(session.user_id.encode())
        self.metrics.sessions.dec()
        if self.presence.close(session.user_id, ChannelType.WEB):
            return self.engine.session_closed(session.user_id, ChannelType.WEB, now)
        return []

    def _active(self, item: _Activity, now: int) -> list[Action]:
        key = (item.user_id, item.channel)
        fresh = key not in self._activity
        self._activity[key] = now + item.for_ms
        if fresh and self.presence.open(item.user_id, item.channel):
            return self.engine.session_opened(item.user_id, item.channel, now)
        return []

    def _expire_activity(self, now: int) -> None:
        # Only presence closes: an ack button on an older message stays valid,
        # so the engine keeps waiting for acks on the channel (no session_closed).
        for key, until in list(self._activity.items()):
            if until <= now:
                del self._activity[key]
                self.presence.close(*key)

    # -- actions --------------------------------------------------------------

    async def _carry_out(self, actions: list[Action], *, hold: bool = False) -> None:
        """Write, then send; repeat with what the engine answers, until it answers nothing.

        ``hold`` applies to the first writes (False when they hold the rows held
        before, which must not wait again); the writes that follow in reaction
        (a channel answered at once, as a precheck does for a user without an
        address there) may always wait for the next turn's commit.
        """
        while actions:
            writes = [a for a in actions if isinstance(a, Persist | RecordAttempt | Settle)]
            if hold and writes and all(isinstance(a, RecordAttempt) for a in writes):
                # Attempt rows alone: nothing waits on them, so they wait for the
                # next turn's commit instead of paying one of their own.
                self._held_attempts += writes
                writes = []
            hold = True
            fresh, known = await self._write(writes) if writes else _NONE_WRITTEN
            now = self.clock()
            follow: list[Action] = []
            poll = self._poll_intake
            for event_id in fresh:
                follow += self.engine.persisted(event_id, now)
                poll()
            for event_id in known:
                follow += await self._resume_stored(event_id, now)
            for action in actions:
                if isinstance(action, SendTo):
                    follow += self._send_to(action, now)
                    poll()
                elif isinstance(action, SendAck):
                    self._send_ack(action)
            self._rearm_router()
            actions = follow

    async def _resume_stored(self, event_id: str, now: int) -> list[Action]:
        """A "new" event the store already held (older than the dedup window)."""
        rows = await self.store.query(RESTORE_ONE_SQL, (event_id,))
        if not rows:  # stored but not projected yet: cannot happen within one writer
            return self.engine.persisted(event_id, now)
        stored = stored_delivery(rows[0][:6])
        if stored.state is not DeliveryState.PERSISTED:  # finished: no more records of it
            self._event_seqs.pop(event_id, None)
        return self.engine.already_stored(stored, now)

    async def _write(
        self, writes: list[Persist | RecordAttempt | Settle]
    ) -> tuple[list[str], list[str]]:
        """Append the turn's records in one commit; (newly persisted ids, already known ids)."""
        # INFORMATIONAL events are never stored: neither their attempts nor their end.
        fast = {
            a.event.event_id
            for a in writes
            if isinstance(a, Settle) and a.event.priority is Priority.INFORMATIONAL
        }
        records: list[Record] = []
        persist_slots: list[tuple[int, str]] = []
        settled: Counter[tuple[Priority, DeliveryState]] = Counter()
        ended: set[str] = set()
        now = self.clock()
        for action in writes:
            if isinstance(action, Persist):
                persist_slots.append((len(records), action.event.event_id))
                frame = self._frames.pop(action.event.event_id, None)
                records.append(user_event_record(action.event, now, frame))
            elif isinstance(action, Settle):
                settled[action.event.priority, action.state] += 1
                if action.event.event_id not in fast:
                    ended.add(action.event.event_id)
                    seq = self._event_seqs.pop(action.event.event_id, None)
                    records.append(settle_record(action, seq))
            elif action.event_id not in fast:
                seq = self._event_seqs.get(action.event_id)
                records.append(attempt_record(action, None, seq))
        for (priority, state), count in settled.items():  # one labels() per kind, not per event
            self.metrics.deliveries.labels(priority=priority.name, state=state.value).inc(count)
        results = await self.store.append_many(records) if records else []
        for slot, event_id in persist_slots:
            if event_id not in ended:  # (settled in the very turn it was persisted)
                self._event_seqs[event_id] = results[slot].record.seq
        if self._journaled:  # the store holds them now: one release per segment
            segments = Counter(self._journaled.pop(eid, -1) for _slot, eid in persist_slots)
            self._release_segments(segments)
        fresh = [eid for slot, eid in persist_slots if not results[slot].duplicate]
        known = [eid for slot, eid in persist_slots if results[slot].duplicate]
        return fresh, known

    def _send_to(self, action: SendTo, now: int) -> list[Action]:
        event = action.event
        if action.channel is ChannelType.WEB:
            if event.priority is Priority.INFORMATIONAL and self._evicted(event.event_id):
                return []
            outcome = self._push_to_sessions(event, action.attempt, now)
            return self.engine.attempt_result(
                event.event_id, action.channel, action.attempt, outcome, now
            )
        adapter = self.channels.get(action.channel)
        known: DeliveryOutcome | None
        if adapter is None:
            known = PermanentFailure(f"channel {action.channel.name} is not configured")
            return self.engine.attempt_result(
                event.event_id, action.channel, action.attempt, known, now
            )
        precheck = getattr(adapter, "precheck", None)  # an outcome known without I/O
        known = precheck(event) if precheck is not None else None
        if known is not None:  # (no address, an opt-out): no task, no directory lookup
            return self.engine.attempt_result(
                event.event_id, action.channel, action.attempt, known, now
            )
        task = asyncio.create_task(self._run_channel(adapter, action))
        self._channel_tasks.add(task)
        task.add_done_callback(self._channel_tasks.discard)
        return []

    def _evicted(self, event_id: str) -> bool:
        # An INFORMATIONAL event evicted from a full user queue (dropped, and
        # counted so) after its send was decided in the same turn: not pushed.
        return self.engine.state_of(event_id) is not DeliveryState.DELIVERING

    async def _run_channel(self, adapter: Channel, action: SendTo) -> None:
        try:
            outcome = await adapter.send(action.event, action.attempt)
        except Exception as exc:  # an adapter bug must not stop delivery
            log.exception("channel adapter raised", extra={"channel": action.channel.name})
            outcome = Retryable(f"adapter error: {exc!r}")
        self._put(_Result(action.event.event_id, action.channel, action.attempt, outcome))

    def _push_to_sessions(
        self, event: Event, attempt: int, now: int
    ) -> Delivered | Retryable | PermanentFailure:
        sessions = self.sessions.sessions_of(event.user_id)
        guaranteed = event.priority is not Priority.INFORMATIONAL
        data = encode_user_event(
            event_id=event.event_id,
            user_id=event.user_id,
            event_type=event.event_type,
            priority=int(event.priority),
            timestamp_ms=event.timestamp_ms,
            payload=event.payload,
            attempt=attempt,
            now_ms=now,
        )
        pushed = sum(session.push(data, guaranteed=guaranteed) for session in sessions)
        if pushed:
            return Delivered(ChannelType.WEB, needs_client_ack=guaranteed)
        return Retryable("no live session took the event")

    def _send_ack(self, action: SendAck) -> None:
        if self._early_acked and action.event_id in self._early_acked:
            self._early_acked.discard(action.event_id)
            if action.status is AckStatus.QUEUED:
                return  # sent when the journal took it
        identity = self._senders.get(action.event_id)
        if identity is None:
            return  # came over the fast path, or the sender is long gone
        ack = EventAck(
            event_id=action.event_id,
            status=action.status,
            error_message=action.error or "",
            delivered_via=action.delivered_via or ChannelType.ACTIVE_SESSION,
        )
        self._send_frame(identity, encode_event_ack(ack))
        if action.status is not action.status.QUEUED:
            self._senders.pop(action.event_id, None)

    def _remember_sender(self, event_id: str, identity: bytes) -> None:
        self._senders[event_id] = identity
        self._senders.move_to_end(event_id)
        if len(self._senders) > SENDER_MEMORY:
            self._senders.popitem(last=False)

    def _send_frame(self, identity: bytes, frame: bytes) -> None:
        """Send on the shadow; the caller re-arms the ROUTER once after its sends."""
        try:
            self._router_sync.send_multipart([identity, frame], flags=zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # Again: SNDHWM reached; EHOSTUNREACH: the peer left
            if exc.errno not in (zmq.EAGAIN, zmq.EHOSTUNREACH):
                raise
            self.metrics.rejected.labels(endpoint="zmq_router", code="ACK_NOT_SENT").inc()
        self._router_sent = True

    def _rearm_router(self) -> None:
        # A send on the shadow can consume the edge-triggered signal of a frame
        # that arrived meanwhile: the FD would then stay quiet with the frame
        # unread. Looking at EVENTS once after the last send of a batch (cheaper
        # than per send) catches that; _read_router reads it.
        if self._router_sent:
            self._router_sent = False
            if not self._router_paused and _readable(self._router_sync):
                self._read_router()

    async def close(self) -> None:
        """Store held attempt rows; cancel channel attempts in flight (retried after a restart)."""
        if self._held_attempts:
            held, self._held_attempts = list(self._held_attempts), []
            await self._write(held)
        for task in list(self._channel_tasks):
            task.cancel()
        await asyncio.gather(*self._channel_tasks, return_exceptions=True)
        if self.journal is not None:  # what it still holds is replayed at the next start
            self.journal.close()


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _domain_channels(wire: UserEvent) -> tuple[ChannelPreference, ...]:
    if not wire.channels:
        return ()
    return tuple(ChannelPreference(c.channel, c.only_if_active) for c in wire.channels)


def _readable(sock: zmq.Socket[bytes]) -> bool:
    """Whether a message waits (``EVENTS`` also takes the FD's pending signal)."""
    return bool(cast(int, sock.get(_EVENTS)) & _POLLIN)


def _drain(sock: zmq.Socket[bytes], limit: int) -> tuple[list[list[bytes]], bool]:
    """Up to ``limit`` messages already queued, without blocking; and whether none are left.

    ``EVENTS`` before each read rather than a read until ``Again``: the
    exception costs more than the look-up when one message waits (window 1).
    """
    batch: list[list[bytes]] = []
    recv = sock.recv
    while len(batch) < limit:
        if not _readable(sock):
            return batch, True
        try:
            frame = recv(_NOBLOCK, copy=False)
        except zmq.Again:  # (cannot happen after POLLIN on this thread; harmless if it does)
            return batch, True
        parts = [frame.bytes]
        while frame.more:
            frame = recv(0, copy=False)
            parts.append(frame.bytes)
        batch.append(parts)
    return batch, False


async def _recv_batch(
    sock: zmq.asyncio.Socket, shadow: zmq.Socket[bytes], limit: int
) -> list[list[bytes]]:
    """One awaited message, then whatever else is already queued, up to ``limit``.

    The rest is read through a synchronous shadow of the same socket: no
    future per message, which is what keeps the hot path off asyncio.
    """
    batch = [await sock.recv_multipart()]
    recv = shadow.recv
    while len(batch) < limit:
        try:
            frame = recv(_NOBLOCK, copy=False)
        except zmq.Again:
            break
        # Frames and .more: a third cheaper than recv_multipart's copies and
        # RCVMORE look-ups. The rest of a message is there once its first part is.
        parts = [frame.bytes]
        while frame.more:
            frame = recv(0, copy=False)
            parts.append(frame.bytes)
        batch.append(parts)
    return batch
