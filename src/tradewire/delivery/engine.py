"""The delivery engine: a sans-I/O state pump for user events.

Theory of operation
-------------------
:class:`DeliveryEngine` is built like the protocol objects of h11 and
websockets: it owns no socket, task or clock. Every input is a method call
that carries the current time (``accept``, ``persisted``, ``attempt_result``,
``client_acked``, ``session_opened``, ``session_closed``, ``tick``) and
returns the :mod:`actions <tradewire.delivery.actions>` the driver must carry
out, in order. The driver sleeps until :meth:`DeliveryEngine.next_deadline`
and then calls :meth:`DeliveryEngine.tick`; that is the only timer.

Each pending event has one record that moves only along
:data:`~tradewire.delivery.states.TRANSITIONS`. An event is tried in
*rounds*: a round walks the event's channel list in order
(:func:`~tradewire.delivery.policy.usable_channels` expands
``ACTIVE_SESSION`` and skips channels the user is not on), one attempt at a
time. An attempt ends with the channel's outcome, the client's ack, or the
attempt timeout; anything short of delivery moves to the next channel. When a
round runs out of channels the event waits in ``queued`` until a relevant
session opens or, if some channel is still alive, until a backoff delay that
honours the channels' ``retry_after`` passes. NORMAL stops at its TTL
(``expired``), CRITICAL at its deadline (``failed``); a channel that failed
permanently is never tried again for that event, and an event left with no
channel that could ever work fails at once. INFORMATIONAL is never stored or
retried: one attempt on a live channel, else ``dropped``. When that attempt
would go to WEB with nothing of the user's ahead of it, the driver may skip
the record altogether: :meth:`DeliveryEngine.may_skip_record` says when,
and :meth:`DeliveryEngine.settle_unrecorded` counts the outcome as the full
path would.

Guaranteed events (NORMAL, CRITICAL) are acked QUEUED once they are durable
and get exactly one final ack (DELIVERED or ACK_ERROR) when they settle; a
duplicate ``event_id`` is answered with the current status and never sent
again. Finished ids are remembered in a bounded window; the store covers
older ones.
"""

from __future__ import annotations

from collections.abc import Iterable

from tradewire.delivery._tracking import (
    Outcome,
    PendingDelivery,
    SettledWindow,
    TimerQueue,
    UserQueue,
    final_ack,
)
from tradewire.delivery.actions import (
    Action,
    AttemptOutcome,
    Persist,
    RecordAttempt,
    SendAck,
    SendTo,
    Settle,
    attempt_row,
)
from tradewire.delivery.backoff import retry_delay_ms
from tradewire.delivery.config import DeliveryConfig
from tradewire.delivery.model import AckStatus, ChannelPreference, ChannelType, Event, Priority
from tradewire.delivery.policy import (
    Admission,
    admit_counted,
    first_usable_channel,
    may_become_usable,
    stop_at_ms,
    usable_channels,
)
from tradewire.delivery.ports import Delivered, DeliveryOutcome, PermanentFailure, Presence
from tradewire.delivery.records import DeliveryCounters, StoredDelivery
from tradewire.delivery.states import DeliveryState, DeliveryTrigger, advance, is_final

__all__ = ["DeliveryEngine"]

S = DeliveryState
T = DeliveryTrigger
_IN_FLIGHT = (S.DELIVERING, S.AWAITING_ACK)
_LIVE_CHANNEL_FAILED = "dropped: live channel failed"
# shared by every event settle_unrecorded remembers (see SettledWindow)
_DELIVERED_ON_WEB: Outcome = (S.DELIVERED, ChannelType.WEB, None)
_DROPPED_LIVE_FAILED: Outcome = (S.DROPPED, None, _LIVE_CHANNEL_FAILED)


class DeliveryEngine:
    """Decides, for every user event, where it goes next and what to tell its sender."""

    def __init__(self, config: DeliveryConfig, presence: Presence) -> None:
        self.config = config
        self.presence = presence
        self.counters = DeliveryCounters()
        self._pending: dict[str, PendingDelivery] = {}
        self._by_user: dict[str, UserQueue] = {}
        self._settled = SettledWindow(config.dedup_capacity)
        self._timers = TimerQueue()
        self._seq = 0

    # -- queries ---------------------------------------------------------------

    def state_of(self, event_id: str) -> DeliveryState | None:
        """Current state of ``event_id`` (pending or remembered as finished)."""
        if event_id in self._pending:
            return self._pending[event_id].state
        settled = self._settled.get(event_id)
        return settled[0] if settled else None

    def pending_ids(self, user_id: str) -> list[str]:
        """The user's unfinished events, in acceptance order."""
        queue = self._by_user.get(user_id)
        return list(queue.deliveries) if queue is not None else []

    def pending_count(self) -> int:
        """How many events are not finished yet."""
        return len(self._pending)

    def surely_admits(self, event: Event, ahead: int, critical_ahead: int) -> bool:
        """Would :meth:`accept` take ``event`` as new, storing it, whatever its state then?

        ``ahead`` events of the same user (``critical_ahead`` of them CRITICAL)
        may reach the engine first. True only when ``event`` is unknown and
        guaranteed, and the user's queue has room for all of them without
        evicting or refusing anything: ``accept`` would then answer
        ``Persist``. False says nothing (the engine decides when it gets it).
        """
        if event.priority is Priority.INFORMATIONAL or not event.event_id or not event.user_id:
            return False
        if event.event_id in self._pending or self._settled.get(event.event_id) is not None:
            return False
        queue = self._by_user.get(event.user_id)
        pending, critical = (len(queue), queue.critical) if queue is not None else (0, 0)
        config = self.config
        if pending + ahead >= config.max_pending_per_user:
            return False
        is_critical = event.priority is Priority.CRITICAL
        return not (is_critical and critical + critical_ahead >= config.max_critical_per_user)

    def next_deadline(self) -> int | None:
        """When :meth:`tick` must next be called (ms), or ``None`` if no timer runs."""
        return self._timers.next_at()

    # -- inputs ----------------------------------------------------------------

    def accept(self, event: Event, now_ms: int) -> list[Action]:
        """A container sent ``event``: admit it, answer a duplicate, or refuse it."""
        if not event.event_id or not event.user_id:
            self.counters.rejected += 1
            field = "event_id" if not event.event_id else "user_id"
            return [
                SendAck(event.event_id, AckStatus.ACK_ERROR, error=f"invalid: {field} is empty")
            ]
        duplicate = self._answer_duplicate(event.event_id)
        if duplicate is not None:
            self.counters.duplicates += 1
            return duplicate
        admission = self._admit(event)
        if not admission.admitted and event.priority is not Priority.INFORMATIONAL:
            self.counters.rejected += 1
            return [SendAck(event.event_id, AckStatus.ACK_ERROR, error=admission.reason)]
        actions: list[Action] = []
        if admission.victim is not None:
            victim = self._pending[admission.victim]
            actions += self._finish(victim, T.DROP, now_ms, reason="dropped: user queue full")
        delivery = self._register(event, now_ms, S.RECEIVED)
        self.counters.accepted += 1
        if not admission.admitted:
            return actions + self._finish(delivery, T.DROP, now_ms, reason=admission.reason)
        if event.priority is Priority.INFORMATIONAL:
            return actions + self._send_fast(delivery, now_ms)
        return [*actions, Persist(event)]

    def persisted(self, event_id: str, now_ms: int) -> list[Action]:
        """The store committed ``event_id``: ack QUEUED and start delivering."""
        delivery = self._pending.get(event_id)
        if delivery is None or delivery.state is not S.RECEIVED:
            return []
        self._move(delivery, T.PERSIST)
        return [SendAck(event_id, AckStatus.QUEUED), *self._next_step(delivery, now_ms)]

    def already_stored(self, stored: StoredDelivery, now_ms: int) -> list[Action]:
        """``Persist`` found the event in the store already: resume it, never redo it.

        This happens for a duplicate older than the in-memory dedup window:
        ``accept`` took it for new, the store knew better. A finished event is
        answered with its final ack; an unfinished one carries on from the
        stored state (it was restored at start-up unless it is this very one).
        """
        delivery = self._pending.get(stored.event.event_id)
        if delivery is not None and delivery.state is S.RECEIVED:
            self._forget(delivery)
        self.counters.accepted -= 1
        self.counters.duplicates += 1
        if is_final(stored.state):
            return [self._remember_stored(stored)]
        if stored.event.event_id in self._pending:
            return [SendAck(stored.event.event_id, AckStatus.QUEUED)]
        delivery = self._register(stored.event, stored.accepted_at_ms, S.PERSISTED)
        delivery.attempt = stored.attempts
        return [
            SendAck(stored.event.event_id, AckStatus.QUEUED),
            *self._next_step(delivery, now_ms),
        ]

    def attempt_result(
        self,
        event_id: str,
        channel: ChannelType,
        attempt: int,
        outcome: DeliveryOutcome,
        now_ms: int,
    ) -> list[Action]:
        """A channel adapter reports how attempt ``attempt`` went."""
        record = attempt_row(event_id, channel, attempt, outcome, now_ms)
        delivery = self._pending.get(event_id)
        if delivery is None:
            return [record]
        current = delivery.attempt == attempt and delivery.channel is channel
        if current and delivery.state is S.DELIVERING:
            return [record, *self._current_result(delivery, channel, outcome, now_ms)]
        return [record, *self._late_result(delivery, channel, attempt, outcome, now_ms)]

    def client_acked(self, event_id: str, channel: ChannelType, now_ms: int) -> list[Action]:
        """The user's client on ``channel`` confirmed ``event_id``."""
        delivery = self._pending.get(event_id)
        if delivery is None or channel not in delivery.awaiting_ack_on:
            return []
        attempt = delivery.awaiting_ack_on[channel]
        record = RecordAttempt(event_id, channel, attempt, AttemptOutcome.ACKED, None, now_ms)
        return [record, *self._finish(delivery, T.CONFIRM, now_ms, via=channel)]

    def session_opened(self, user_id: str, channel: ChannelType, now_ms: int) -> list[Action]:
        """``channel`` just opened for the user (presence already says so): flush, in order."""
        actions: list[Action] = []
        for delivery in self._user_deliveries(user_id):
            if delivery.state is S.QUEUED and channel in self._usable(delivery):
                actions += self._next_step(delivery, now_ms)
        return actions

    def session_closed(self, user_id: str, channel: ChannelType, now_ms: int) -> list[Action]:
        """The user's last session on ``channel`` closed: stop waiting for acks from it."""
        if self.presence.is_active(user_id, channel):
            return []
        actions: list[Action] = []
        for delivery in self._user_deliveries(user_id):
            delivery.awaiting_ack_on.pop(channel, None)
            if delivery.state is S.AWAITING_ACK and delivery.channel is channel:
                record = self._in_flight_row(
                    delivery, AttemptOutcome.RETRYABLE, "session closed", now_ms
                )
                actions += [record, *self._after_failure(delivery, now_ms)]
        return actions

    def tick(self, now_ms: int) -> list[Action]:
        """Fire every timer due at ``now_ms``: attempt timeouts, retries, TTLs, deadlines."""
        actions: list[Action] = []
        while (delivery := self._timers.pop_due(now_ms)) is not None:
            actions += self._on_timer(delivery, now_ms)
        return actions

    def restore(self, records: Iterable[StoredDelivery], now_ms: int) -> list[Action]:
        """Rebuild state from the store after a restart (records in acceptance order).

        Unfinished NORMAL and CRITICAL events resume from ``persisted`` with
        their original TTL/deadline and attempt count; finished ones only
        answer duplicates. INFORMATIONAL events are never stored, so never restored.
        """
        actions: list[Action] = []
        for stored in records:
            if is_final(stored.state):
                self._remember_stored(stored)
            elif stored.event.priority is not Priority.INFORMATIONAL:
                if stored.event.event_id in self._pending:
                    continue
                delivery = self._register(stored.event, stored.accepted_at_ms, S.PERSISTED)
                delivery.attempt = stored.attempts
                actions += self._next_step(delivery, now_ms)
        return actions

    # -- INFORMATIONAL without a record ------------------------------------------

    def may_skip_record(
        self, event_id: str, user_id: str, channels: tuple[ChannelPreference, ...]
    ) -> bool:
        """Whether a new INFORMATIONAL event can go to the user's live WEB sessions directly.

        True when :meth:`accept` would admit the event without evicting
        anything, give it its one attempt on WEB and settle it within the same
        turn: the ids are set, the id is no duplicate, the user's queue has
        room and holds no INFORMATIONAL event (whose send is still to come:
        order), and WEB is the first usable channel. The caller then pushes the
        event to the sessions itself and reports with :meth:`settle_unrecorded`;
        when False it calls :meth:`accept` as for any event. Nothing changes
        here, whatever the answer.
        """
        if not event_id or not user_id or event_id in self._pending or event_id in self._settled:
            return False
        queue = self._by_user.get(user_id)
        if queue is not None and (
            len(queue) >= self.config.max_pending_per_user or queue.informational
        ):
            return False
        first = first_usable_channel(
            user_id, Priority.INFORMATIONAL, channels, self.presence, self.config
        )
        return first is ChannelType.WEB

    def settle_unrecorded(self, event_id: str, *, delivered: bool) -> DeliveryState:
        """Count an event :meth:`may_skip_record` let through, as :meth:`accept` would have.

        ``delivered``: at least one live session took it. The counters and the
        duplicate window end up as after ``accept``, ``attempt_result`` and the
        final ``Settle``; returns the final state (``delivered`` or ``dropped``).
        """
        counters = self.counters
        counters.accepted += 1
        counters.attempts += 1
        if delivered:
            counters.delivered += 1
            self._settled.remember(event_id, _DELIVERED_ON_WEB)
            return S.DELIVERED
        counters.dropped += 1
        self._settled.remember(event_id, _DROPPED_LIVE_FAILED)
        return S.DROPPED

    # -- steps -----------------------------------------------------------------

    def _send_fast(self, delivery: PendingDelivery, now_ms: int) -> list[Action]:
        channels = self._usable(delivery)
        if not channels:
            return self._finish(delivery, T.DROP, now_ms, reason="dropped: no active session")
        return self._attempt(delivery, channels[0], T.SEND_FAST, now_ms)

    def _next_step(self, delivery: PendingDelivery, now_ms: int) -> list[Action]:
        """Start the next attempt of the round, or end the round, or stop for good."""
        if delivery.stop_at_ms is not None and now_ms >= delivery.stop_at_ms:
            return self._stop(delivery, now_ms)
        for channel in self._usable(delivery):
            if channel not in delivery.tried and delivery.not_before.get(channel, 0) <= now_ms:
                trigger = T.FAIL_OVER if delivery.state in _IN_FLIGHT else T.SEND
                return self._attempt(delivery, channel, trigger, now_ms)
        return self._end_round(delivery, now_ms)

    def _attempt(
        self, delivery: PendingDelivery, channel: ChannelType, trigger: T, now_ms: int
    ) -> list[Action]:
        self._move(delivery, trigger)
        delivery.attempt += 1
        delivery.channel = channel
        delivery.tried.add(channel)
        self.counters.attempts += 1
        timeout = self.config.attempt_timeout_ms(delivery.event.priority)
        self._timers.schedule(delivery, now_ms + timeout)
        return [SendTo(delivery.event, channel, delivery.attempt)]

    def _end_round(self, delivery: PendingDelivery, now_ms: int) -> list[Action]:
        """Every usable channel was tried: wait for a retry or a session, or give up."""
        alive = bool(self._usable(delivery))
        if not alive and not may_become_usable(delivery.event, self.config, delivery.dead):
            reason = "undeliverable: no channel left that could deliver it"
            return self._finish(delivery, T.GIVE_UP, now_ms, reason=reason)
        wake_at = delivery.stop_at_ms
        if alive:
            retry_at = now_ms + self._retry_wait_ms(delivery, now_ms)
            wake_at = retry_at if wake_at is None else min(wake_at, retry_at)
        delivery.tried.clear()
        if delivery.state is not S.QUEUED:
            self._move(delivery, T.WAIT)
        if wake_at is None:
            self._timers.cancel(delivery)
        else:
            self._timers.schedule(delivery, wake_at)
        return []

    def _retry_wait_ms(self, delivery: PendingDelivery, now_ms: int) -> int:
        """Backoff after a round that tried something, but never before a channel may retry."""
        blocked = min(delivery.not_before.get(c, 0) for c in self._usable(delivery)) - now_ms
        if not delivery.tried:  # nothing was tried: every live channel is in retry-after
            return max(blocked, 0)
        delivery.rounds += 1
        seed = delivery.event.event_id
        return retry_delay_ms(self.config.backoff, delivery.rounds, max(blocked, 0), seed)

    def _stop(self, delivery: PendingDelivery, now_ms: int) -> list[Action]:
        if delivery.event.priority is Priority.NORMAL:
            reason = f"expired: not delivered within {self.config.normal_ttl_ms} ms"
            return self._finish(delivery, T.EXPIRE, now_ms, reason=reason)
        reason = f"failed: not delivered within the {self.config.critical_deadline_ms} ms deadline"
        return self._finish(delivery, T.GIVE_UP, now_ms, reason=reason)

    def _current_result(
        self,
        delivery: PendingDelivery,
        channel: ChannelType,
        outcome: DeliveryOutcome,
        now_ms: int,
    ) -> list[Action]:
        if isinstance(outcome, Delivered):
            fire_and_forget = delivery.event.priority is Priority.INFORMATIONAL
            if fire_and_forget or not outcome.needs_client_ack:
                return self._finish(delivery, T.CONFIRM, now_ms, via=channel)
            delivery.awaiting_ack_on[channel] = delivery.attempt
            self._move(delivery, T.AWAIT_ACK)
            timeout = self.config.attempt_timeout_ms(delivery.event.priority)
            self._timers.schedule(delivery, now_ms + timeout)
            return []
        if isinstance(outcome, PermanentFailure):
            delivery.dead.add(channel)
        elif outcome.retry_after_ms:
            delivery.not_before[channel] = now_ms + outcome.retry_after_ms
        return self._after_failure(delivery, now_ms)

    def _late_result(
        self,
        delivery: PendingDelivery,
        channel: ChannelType,
        attempt: int,
        outcome: DeliveryOutcome,
        now_ms: int,
    ) -> list[Action]:
        """A result for an attempt the engine already moved past (after its timeout)."""
        if not isinstance(outcome, Delivered) or delivery.state is S.RECEIVED:
            return []
        if outcome.needs_client_ack:
            delivery.awaiting_ack_on[channel] = attempt
            return []
        return self._finish(delivery, T.CONFIRM, now_ms, via=channel)

    def _after_failure(self, delivery: PendingDelivery, now_ms: int) -> list[Action]:
        if delivery.event.priority is Priority.INFORMATIONAL:
            return self._finish(delivery, T.DROP, now_ms, reason=_LIVE_CHANNEL_FAILED)
        return self._next_step(delivery, now_ms)

    def _on_timer(self, delivery: PendingDelivery, now_ms: int) -> list[Action]:
        if delivery.state in _IN_FLIGHT:
            timeout = self.config.attempt_timeout_ms(delivery.event.priority)
            error = f"no delivery confirmation within {timeout} ms"
            record = self._in_flight_row(delivery, AttemptOutcome.TIMED_OUT, error, now_ms)
            return [record, *self._after_failure(delivery, now_ms)]
        return self._next_step(delivery, now_ms)

    # -- book-keeping ----------------------------------------------------------

    def _register(self, event: Event, accepted_at_ms: int, state: S) -> PendingDelivery:
        self._seq += 1
        stop = stop_at_ms(event, accepted_at_ms, self.config)
        delivery = PendingDelivery(event, self._seq, accepted_at_ms, state, stop)
        self._pending[event.event_id] = delivery
        queue = self._by_user.get(event.user_id)
        if queue is None:
            queue = self._by_user[event.user_id] = UserQueue()
        queue.add(delivery)
        return delivery

    def _forget(self, delivery: PendingDelivery) -> None:
        event = delivery.event
        self._timers.cancel(delivery)
        del self._pending[event.event_id]
        queue = self._by_user[event.user_id]
        queue.remove(delivery)
        if not queue:
            del self._by_user[event.user_id]

    def _move(self, delivery: PendingDelivery, trigger: T) -> None:
        delivery.state = advance(delivery.state, trigger, delivery.event.event_id)

    def _finish(
        self,
        delivery: PendingDelivery,
        trigger: T,
        now_ms: int,
        *,
        via: ChannelType | None = None,
        reason: str | None = None,
    ) -> list[Action]:
        """Settle ``delivery`` for good: the store first, then the one final ack."""
        self._move(delivery, trigger)
        event = delivery.event
        self._forget(delivery)
        self.counters.count_final(delivery.state)
        ack = final_ack(event.event_id, delivery.state, via, reason)
        self._settled.remember(event.event_id, (delivery.state, via, reason))
        return [Settle(event, delivery.state, via, reason, now_ms), ack]

    def _answer_duplicate(self, event_id: str) -> list[Action] | None:
        delivery = self._pending.get(event_id)
        if delivery is not None:
            durable = delivery.state is not S.RECEIVED
            guaranteed = delivery.event.priority is not Priority.INFORMATIONAL
            return [SendAck(event_id, AckStatus.QUEUED)] if durable and guaranteed else []
        settled = self._settled.get(event_id)
        return [settled[1]] if settled is not None else None

    def _remember_stored(self, stored: StoredDelivery) -> SendAck:
        """Remember a finished event the store returned; its final ack."""
        event_id, state = stored.event.event_id, stored.state
        via, reason = stored.delivered_via, stored.reason or state.value
        self._settled.remember(event_id, (state, via, reason))
        return final_ack(event_id, state, via, reason)

    def _admit(self, event: Event) -> Admission:
        queue = self._by_user.get(event.user_id)
        if queue is None:
            return admit_counted(event.priority, 0, 0, lambda: None, self.config)
        return admit_counted(
            event.priority,
            len(queue),
            queue.critical,
            lambda: queue.victim(event.priority),
            self.config,
        )

    def _user_deliveries(self, user_id: str) -> list[PendingDelivery]:
        """A copy of the user's pending deliveries (the walk may finish some)."""
        queue = self._by_user.get(user_id)
        return list(queue.deliveries.values()) if queue is not None else []

    def _usable(self, delivery: PendingDelivery) -> list[ChannelType]:
        return usable_channels(delivery.event, self.presence, self.config, delivery.dead)

    @staticmethod
    def _in_flight_row(
        delivery: PendingDelivery, outcome: AttemptOutcome, error: str, now_ms: int
    ) -> RecordAttempt:
        """The attempt-log row that ends the current attempt without a channel result."""
        assert delivery.channel is not None, "an attempt in flight has a channel"
        event_id = delivery.event.event_id
        return RecordAttempt(event_id, delivery.channel, delivery.attempt, outcome, error, now_ms)
