"""The delivery engine, path by path: no sockets, a manual clock, no sleeps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from tradewire.delivery import (
    AckStatus,
    Action,
    AttemptOutcome,
    BackoffPolicy,
    ChannelPreference,
    ChannelType,
    Delivered,
    DeliveryConfig,
    DeliveryEngine,
    DeliveryOutcome,
    DeliveryState,
    Event,
    LocalPresence,
    ManualClock,
    PermanentFailure,
    Persist,
    Priority,
    RecordAttempt,
    Retryable,
    SendAck,
    SendTo,
    Settle,
    StoredDelivery,
)

A = TypeVar("A")
WEB, TELEGRAM, EMAIL, PUSH = (
    ChannelType.WEB,
    ChannelType.TELEGRAM,
    ChannelType.EMAIL,
    ChannelType.PUSH,
)
ACTIVE = ChannelType.ACTIVE_SESSION
INFO, NORMAL, CRITICAL = Priority.INFORMATIONAL, Priority.NORMAL, Priority.CRITICAL
START = 1_000_000


def of(kind: type[A], actions: Sequence[Action]) -> list[A]:
    return [a for a in actions if isinstance(a, kind)]


def prefs(*channels: ChannelType | tuple[ChannelType, bool]) -> tuple[ChannelPreference, ...]:
    out = []
    for c in channels:
        out.append(ChannelPreference(*c) if isinstance(c, tuple) else ChannelPreference(c))
    return tuple(out)


def ev(
    eid: str = "e1",
    priority: Priority = CRITICAL,
    channels: tuple[ChannelPreference, ...] = (),
    user: str = "u1",
) -> Event:
    return Event(eid, user, 1, priority, channels, b'{"order_id": "1"}', 123)


class Rig:
    """Engine + presence + manual clock, with the driver's chores as helpers."""

    def __init__(self, **config: Any) -> None:
        config.setdefault("backoff", BackoffPolicy(base_ms=1_000, cap_ms=8_000, jitter=0.0))
        self.clock = ManualClock(START)
        self.presence = LocalPresence()
        self.engine = DeliveryEngine(DeliveryConfig(**config), self.presence)

    @property
    def now(self) -> int:
        return self.clock.now_ms()

    def accept(self, event: Event) -> list[Action]:
        """Accept and, as the driver would, persist right away."""
        actions = self.engine.accept(event, self.now)
        if any(isinstance(a, Persist) for a in actions):
            actions += self.engine.persisted(event.event_id, self.now)
        return actions

    def open(self, user: str, channel: ChannelType) -> list[Action]:
        self.presence.open(user, channel)
        return self.engine.session_opened(user, channel, self.now)

    def close(self, user: str, channel: ChannelType) -> list[Action]:
        self.presence.close(user, channel)
        return self.engine.session_closed(user, channel, self.now)

    def result(self, send: SendTo, outcome: DeliveryOutcome) -> list[Action]:
        return self.engine.attempt_result(
            send.event.event_id, send.channel, send.attempt, outcome, self.now
        )

    def advance(self, ms: int) -> list[Action]:
        self.clock.advance(ms)
        return self.engine.tick(self.now)

    def state(self, eid: str = "e1") -> DeliveryState | None:
        return self.engine.state_of(eid)


def only_send(actions: Sequence[Action]) -> SendTo:
    sends = of(SendTo, actions)
    assert len(sends) == 1, actions
    return sends[0]


def final_ack(actions: Sequence[Action]) -> SendAck:
    acks = [a for a in of(SendAck, actions) if a.status is not AckStatus.QUEUED]
    assert len(acks) == 1, actions
    return acks[0]


# -- INFORMATIONAL ----------------------------------------------------------------


def test_informational_goes_to_the_open_session_unstored() -> None:
    rig = Rig()
    rig.open("u1", WEB)
    actions = rig.engine.accept(ev(priority=INFO), rig.now)
    assert not of(Persist, actions)
    send = only_send(actions)
    assert (send.channel, send.attempt) == (WEB, 1)
    done = rig.result(send, Delivered(WEB, needs_client_ack=True))
    assert final_ack(done) == SendAck("e1", AckStatus.DELIVERED, delivered_via=WEB)
    assert rig.state() is DeliveryState.DELIVERED
    assert rig.engine.counters.delivered == 1


def test_informational_with_nobody_connected_is_dropped_and_counted() -> None:
    rig = Rig()
    actions = rig.engine.accept(ev(priority=INFO), rig.now)
    assert not of(SendTo, actions) and not of(Persist, actions)
    assert of(Settle, actions)[0].state is DeliveryState.DROPPED
    assert final_ack(actions).status is AckStatus.ACK_ERROR
    assert rig.engine.counters.dropped == 1
    assert rig.engine.next_deadline() is None


def test_informational_never_leaves_for_a_channel_the_user_is_not_on() -> None:
    rig = Rig()
    rig.open("u1", WEB)
    actions = rig.engine.accept(ev(priority=INFO, channels=prefs(TELEGRAM)), rig.now)
    assert rig.state() is DeliveryState.DROPPED and not of(SendTo, actions)
    rig.open("u1", TELEGRAM)
    send = only_send(rig.engine.accept(ev("e2", INFO, prefs(TELEGRAM)), rig.now))
    assert send.channel is TELEGRAM


def test_informational_failure_or_timeout_is_dropped_not_retried() -> None:
    rig = Rig()
    rig.open("u1", WEB)
    send = only_send(rig.engine.accept(ev("e1", INFO), rig.now))
    assert not of(SendTo, rig.result(send, Retryable("buffer full")))
    assert rig.state("e1") is DeliveryState.DROPPED
    only_send(rig.engine.accept(ev("e2", INFO), rig.now))
    actions = rig.advance(DeliveryConfig().ack_timeout_ms)
    assert of(RecordAttempt, actions)[0].outcome is AttemptOutcome.TIMED_OUT
    assert rig.state("e2") is DeliveryState.DROPPED
    assert rig.engine.counters.dropped == 2


# -- NORMAL -----------------------------------------------------------------------


def test_guaranteed_events_are_acked_only_once_durable() -> None:
    rig = Rig()
    rig.open("u1", WEB)
    actions = rig.engine.accept(ev(priority=NORMAL), rig.now)
    assert actions == [Persist(ev(priority=NORMAL))]
    assert rig.state() is DeliveryState.RECEIVED
    after = rig.engine.persisted("e1", rig.now)
    assert after[0] == SendAck("e1", AckStatus.QUEUED)
    assert only_send(after).channel is WEB
    assert rig.engine.persisted("e1", rig.now) == []
    assert rig.engine.persisted("nope", rig.now) == []


def test_normal_waits_for_a_session_and_flushes_in_order() -> None:
    rig = Rig()
    for i in range(3):
        assert not of(SendTo, rig.accept(ev(f"n{i}", NORMAL)))
        assert rig.state(f"n{i}") is DeliveryState.QUEUED
    rig.accept(ev("other", NORMAL, user="u2"))
    sends = of(SendTo, rig.open("u1", WEB))
    assert [s.event.event_id for s in sends] == ["n0", "n1", "n2"]
    assert all(s.channel is WEB for s in sends)
    assert rig.state("other") is DeliveryState.QUEUED


def test_normal_expires_after_its_ttl_and_the_expiry_is_recorded() -> None:
    rig = Rig(normal_ttl_ms=60_000)
    rig.accept(ev(priority=NORMAL))
    assert rig.engine.next_deadline() == START + 60_000
    assert rig.advance(59_999) == []
    actions = rig.advance(1)
    settle = of(Settle, actions)[0]
    assert (settle.state, settle.at_ms) == (DeliveryState.EXPIRED, START + 60_000)
    ack = final_ack(actions)
    assert ack.status is AckStatus.ACK_ERROR and ack.error and "expired" in ack.error
    assert actions.index(settle) < actions.index(ack)
    assert rig.engine.counters.expired == 1
    assert not of(SendTo, rig.open("u1", WEB))


def test_normal_is_delivered_when_the_client_acks() -> None:
    rig = Rig()
    rig.open("u1", WEB)
    send = only_send(rig.accept(ev(priority=NORMAL)))
    assert rig.result(send, Delivered(WEB, needs_client_ack=True)) == [
        RecordAttempt("e1", WEB, 1, AttemptOutcome.SENT, None, rig.now)
    ]
    assert rig.state() is DeliveryState.AWAITING_ACK
    done = rig.engine.client_acked("e1", WEB, rig.now)
    assert of(RecordAttempt, done)[0].outcome is AttemptOutcome.ACKED
    assert final_ack(done) == SendAck("e1", AckStatus.DELIVERED, delivered_via=WEB)
    assert rig.engine.client_acked("e1", WEB, rig.now) == []


def test_normal_unacked_waits_and_a_late_ack_still_counts() -> None:
    rig = Rig()
    rig.open("u1", WEB)
    send = only_send(rig.accept(ev(priority=NORMAL)))
    rig.result(send, Delivered(WEB, needs_client_ack=True))
    actions = rig.advance(DeliveryConfig().ack_timeout_ms)
    assert of(RecordAttempt, actions)[0].outcome is AttemptOutcome.TIMED_OUT
    assert rig.state() is DeliveryState.QUEUED
    assert final_ack(rig.engine.client_acked("e1", WEB, rig.now)).delivered_via is WEB


def test_normal_retries_a_failed_live_channel_after_backoff() -> None:
    rig = Rig()
    rig.open("u1", WEB)
    send = only_send(rig.accept(ev(priority=NORMAL)))
    assert rig.result(send, Retryable("socket busy"))[1:] == []
    assert rig.state() is DeliveryState.QUEUED
    assert rig.engine.next_deadline() == rig.now + 1_000
    again = only_send(rig.advance(1_000))
    assert (again.channel, again.attempt) == (WEB, 2)


# -- CRITICAL ---------------------------------------------------------------------


def test_critical_escalates_on_ack_timeout_failure_and_retries_with_backoff() -> None:
    rig = Rig(critical_ack_timeout_ms=5_000)
    rig.open("u1", WEB)
    send = only_send(rig.accept(ev(channels=prefs(WEB, TELEGRAM, EMAIL))))
    assert (send.channel, send.attempt) == (WEB, 1)
    rig.result(send, Delivered(WEB, needs_client_ack=True))
    assert rig.advance(4_999) == []
    actions = rig.advance(1)
    assert of(RecordAttempt, actions)[0].outcome is AttemptOutcome.TIMED_OUT
    send = only_send(actions)
    assert (send.channel, send.attempt) == (TELEGRAM, 2)
    send = only_send(rig.result(send, Retryable("429")))
    assert (send.channel, send.attempt) == (EMAIL, 3)
    assert not of(SendTo, rig.result(send, PermanentFailure("550 no such user")))
    assert rig.state() is DeliveryState.QUEUED
    assert rig.engine.next_deadline() == rig.now + 1_000
    send = only_send(rig.advance(1_000))
    assert (send.channel, send.attempt) == (WEB, 4)
    send = only_send(rig.result(send, Retryable("closed")))
    assert send.channel is TELEGRAM
    rig.result(send, Retryable("429"))
    assert rig.engine.next_deadline() == rig.now + 2_000
    only_send(rig.advance(2_000))


def test_critical_honours_retry_after() -> None:
    rig = Rig()
    send = only_send(rig.accept(ev(channels=prefs(TELEGRAM))))
    rig.result(send, Retryable("Too Many Requests", retry_after_ms=30_000))
    assert rig.engine.next_deadline() == rig.now + 30_000
    assert rig.advance(29_999) == []
    assert only_send(rig.advance(1)).attempt == 2


def test_retry_after_holds_back_only_the_channel_that_asked() -> None:
    rig = Rig()
    send = only_send(rig.accept(ev(channels=prefs(TELEGRAM, EMAIL))))
    send = only_send(rig.result(send, Retryable("429", retry_after_ms=30_000)))
    assert send.channel is EMAIL
    rig.result(send, Retryable("421 try later"))
    assert rig.engine.next_deadline() == START + 1_000
    send = only_send(rig.advance(1_000))
    assert (send.channel, send.attempt) == (EMAIL, 3)
    assert not of(SendTo, rig.result(send, PermanentFailure("550")))
    assert rig.engine.next_deadline() == START + 30_000
    rig.clock.set(START + 30_000)
    assert only_send(rig.engine.tick(rig.now)).channel is TELEGRAM


def test_critical_fails_with_ack_error_at_the_deadline() -> None:
    rig = Rig(critical_deadline_ms=60_000, critical_ack_timeout_ms=5_000)
    send = only_send(rig.accept(ev(channels=prefs(TELEGRAM))))
    sends, actions = 1, rig.result(send, Retryable("down"))
    while rig.state() is not DeliveryState.FAILED:
        deadline = rig.engine.next_deadline()
        assert deadline is not None
        rig.clock.set(deadline)
        actions = rig.engine.tick(rig.now)
        for send in of(SendTo, actions):
            assert rig.now < START + 60_000
            sends += 1
            actions += rig.result(send, Retryable("down"))
    assert sends > 3
    ack = final_ack(actions)
    assert ack.status is AckStatus.ACK_ERROR and ack.error and "deadline" in ack.error
    assert of(Settle, actions)[0].at_ms == START + 60_000
    assert rig.engine.counters.failed == 1
    assert rig.engine.next_deadline() is None


def test_critical_fails_at_once_when_every_channel_failed_for_good() -> None:
    rig = Rig()
    send = only_send(rig.accept(ev(channels=prefs(EMAIL))))
    actions = rig.result(send, PermanentFailure("address rejected"))
    ack = final_ack(actions)
    assert ack.status is AckStatus.ACK_ERROR and ack.error and "undeliverable" in ack.error
    assert rig.state() is DeliveryState.FAILED


def test_critical_waits_for_a_session_then_goes_out() -> None:
    rig = Rig(critical_deadline_ms=60_000)
    actions = rig.accept(ev(channels=prefs(ACTIVE)))
    assert not of(SendTo, actions) and rig.state() is DeliveryState.QUEUED
    assert rig.engine.next_deadline() == START + 60_000
    rig.advance(10_000)
    assert only_send(rig.open("u1", WEB)).channel is WEB


def test_session_closing_fails_over_without_waiting_for_the_timeout() -> None:
    rig = Rig()
    rig.open("u1", WEB)
    send = only_send(rig.accept(ev(channels=prefs(WEB, PUSH))))
    rig.result(send, Delivered(WEB, needs_client_ack=True))
    actions = rig.close("u1", WEB)
    assert of(RecordAttempt, actions)[0].error == "session closed"
    assert only_send(actions).channel is PUSH


def test_a_second_tab_keeps_the_session_open() -> None:
    rig = Rig()
    rig.open("u1", WEB)
    rig.open("u1", WEB)
    send = only_send(rig.accept(ev(channels=prefs(WEB, PUSH))))
    rig.result(send, Delivered(WEB, needs_client_ack=True))
    assert rig.close("u1", WEB) == []
    assert final_ack(rig.engine.client_acked("e1", WEB, rig.now)).status is AckStatus.DELIVERED


def test_a_late_success_from_a_timed_out_attempt_counts() -> None:
    rig = Rig(critical_ack_timeout_ms=5_000)
    send = only_send(rig.accept(ev(channels=prefs(TELEGRAM, EMAIL))))
    second = only_send(rig.advance(5_000))
    assert second.channel is EMAIL
    done = rig.result(send, Delivered(TELEGRAM))
    assert final_ack(done).delivered_via is TELEGRAM
    assert rig.result(second, Delivered(EMAIL)) == [
        RecordAttempt("e1", EMAIL, 2, AttemptOutcome.DELIVERED, None, rig.now)
    ]
    assert rig.engine.counters.delivered == 1


def test_stale_failures_are_recorded_but_change_nothing() -> None:
    rig = Rig(critical_ack_timeout_ms=5_000)
    send = only_send(rig.accept(ev(channels=prefs(TELEGRAM, EMAIL))))
    rig.advance(5_000)
    actions = rig.result(send, Retryable("late"))
    assert [type(a) for a in actions] == [RecordAttempt]
    assert rig.state() is DeliveryState.DELIVERING


# -- channel lists ----------------------------------------------------------------


def test_only_if_active_skips_a_channel_the_user_is_not_on() -> None:
    rig = Rig()
    channels = prefs((TELEGRAM, True), EMAIL)
    assert only_send(rig.accept(ev("e1", channels=channels))).channel is EMAIL
    rig.presence.open("u1", TELEGRAM)
    assert only_send(rig.accept(ev("e2", channels=channels))).channel is TELEGRAM


def test_active_session_expands_to_the_open_channels_in_order() -> None:
    rig = Rig(critical_ack_timeout_ms=1_000)
    rig.open("u1", TELEGRAM)
    rig.open("u1", WEB)
    send = only_send(rig.accept(ev(channels=prefs(ACTIVE, EMAIL))))
    assert send.channel is TELEGRAM
    assert only_send(rig.advance(1_000)).channel is WEB
    assert only_send(rig.advance(1_000)).channel is EMAIL


def test_empty_channel_lists_take_the_priority_defaults() -> None:
    rig = Rig(critical_ack_timeout_ms=1_000)
    rig.open("u1", WEB)
    assert only_send(rig.accept(ev("e1"))).channel is WEB
    assert [only_send(rig.advance(1_000)).channel for _ in range(3)] == [PUSH, TELEGRAM, EMAIL]
    custom = Rig(default_channels={NORMAL: prefs(EMAIL)})
    assert only_send(custom.accept(ev("n1", NORMAL))).channel is EMAIL


def test_channels_without_an_adapter_are_skipped() -> None:
    rig = Rig(enabled_channels=frozenset({WEB, EMAIL}))
    send = only_send(rig.accept(ev(channels=prefs(ChannelType.DISCORD, TELEGRAM, EMAIL))))
    assert send.channel is EMAIL


# -- acks, duplicates, validation -------------------------------------------------


def test_duplicates_get_the_current_status_and_are_never_sent_twice() -> None:
    rig = Rig()
    event = ev(channels=prefs(EMAIL))
    assert rig.engine.accept(event, rig.now) == [Persist(event)]
    assert rig.engine.accept(event, rig.now) == []
    send = only_send(rig.engine.persisted("e1", rig.now))
    assert rig.engine.accept(event, rig.now) == [SendAck("e1", AckStatus.QUEUED)]
    rig.result(send, Delivered(EMAIL))
    delivered = SendAck("e1", AckStatus.DELIVERED, delivered_via=EMAIL)
    assert rig.engine.accept(event, rig.now) == [delivered]
    assert rig.engine.counters.duplicates == 3
    assert rig.engine.counters.accepted == 1


def test_invalid_events_are_refused_with_ack_error() -> None:
    rig = Rig()
    (ack,) = rig.engine.accept(Event("", "u1", 1, CRITICAL), rig.now)
    assert isinstance(ack, SendAck) and ack.status is AckStatus.ACK_ERROR
    assert ack.error == "invalid: event_id is empty"
    (ack,) = rig.engine.accept(Event("e1", "", 1, CRITICAL), rig.now)
    assert isinstance(ack, SendAck) and ack.error == "invalid: user_id is empty"
    assert rig.engine.counters.rejected == 2
    assert rig.state("e1") is None


def test_the_dedup_window_is_bounded() -> None:
    rig = Rig(dedup_capacity=2)
    for i in range(3):
        send = only_send(rig.accept(ev(f"e{i}", channels=prefs(EMAIL))))
        rig.result(send, Delivered(EMAIL))
    assert rig.state("e0") is None
    assert rig.state("e2") is DeliveryState.DELIVERED


# -- bounded queues ---------------------------------------------------------------


def test_a_full_queue_evicts_the_oldest_waiting_normal() -> None:
    rig = Rig(max_pending_per_user=2)
    rig.accept(ev("n1", NORMAL))
    rig.accept(ev("n2", NORMAL))
    actions = rig.accept(ev("n3", NORMAL))
    assert of(Settle, actions)[0].event.event_id == "n1"
    assert final_ack(actions).error == "dropped: user queue full"
    assert rig.engine.pending_ids("u1") == ["n2", "n3"]
    assert rig.engine.counters.dropped == 1


def test_a_full_queue_drops_informational_first() -> None:
    rig = Rig(max_pending_per_user=2)
    rig.open("u1", WEB)
    only_send(rig.engine.accept(ev("i1", INFO), rig.now))
    rig.close("u1", WEB)
    rig.accept(ev("n1", NORMAL))
    actions = rig.accept(ev("n2", NORMAL))
    assert of(Settle, actions)[0].event.event_id == "i1"
    assert rig.engine.pending_ids("u1") == ["n1", "n2"]
    dropped = rig.engine.accept(ev("i2", INFO), rig.now)
    assert of(Settle, dropped)[0].state is DeliveryState.DROPPED
    assert rig.engine.pending_ids("u1") == ["n1", "n2"]


def test_critical_is_never_evicted_and_refusal_is_explicit() -> None:
    rig = Rig(max_pending_per_user=2, max_critical_per_user=3)
    rig.accept(ev("c1", channels=prefs(ACTIVE)))
    rig.accept(ev("c2", channels=prefs(ACTIVE)))
    (refused,) = rig.accept(ev("n1", NORMAL))
    assert isinstance(refused, SendAck) and refused.error == "refused: user queue full"
    assert rig.state("n1") is None
    rig.accept(ev("c3", channels=prefs(ACTIVE)))
    (refused,) = rig.accept(ev("c4", channels=prefs(ACTIVE)))
    assert isinstance(refused, SendAck) and refused.status is AckStatus.ACK_ERROR
    assert rig.engine.pending_ids("u1") == ["c1", "c2", "c3"]
    assert rig.engine.counters.rejected == 2
    assert rig.engine.counters.dropped == 0


# -- restart ----------------------------------------------------------------------


def test_restore_resumes_pending_events_and_remembers_finished_ones() -> None:
    rig = Rig(normal_ttl_ms=60_000, critical_deadline_ms=600_000)
    rig.clock.set(START + 100_000)
    records = [
        StoredDelivery(ev("c1", channels=prefs(EMAIL)), DeliveryState.QUEUED, START, attempts=3),
        StoredDelivery(ev("n1", NORMAL), DeliveryState.QUEUED, START),
        StoredDelivery(ev("n2", NORMAL), DeliveryState.PERSISTED, START + 90_000),
        StoredDelivery(ev("d1"), DeliveryState.DELIVERED, START, 1, delivered_via=PUSH),
        StoredDelivery(ev("f1"), DeliveryState.FAILED, START, 9, reason="failed: deadline"),
        StoredDelivery(ev("i1", INFO), DeliveryState.DELIVERING, START),
    ]
    actions = rig.engine.restore(records, rig.now)
    send = only_send(actions)
    assert (send.event.event_id, send.channel, send.attempt) == ("c1", EMAIL, 4)
    assert [(s.event.event_id, s.state) for s in of(Settle, actions)] == [
        ("n1", DeliveryState.EXPIRED)
    ]
    assert rig.state("n2") is DeliveryState.QUEUED
    assert rig.state("i1") is None
    assert rig.engine.accept(ev("d1"), rig.now) == [
        SendAck("d1", AckStatus.DELIVERED, delivered_via=PUSH)
    ]
    assert rig.engine.accept(ev("f1"), rig.now) == [
        SendAck("f1", AckStatus.ACK_ERROR, error="failed: deadline")
    ]
    assert rig.engine.accept(ev("c1"), rig.now) == [SendAck("c1", AckStatus.QUEUED)]
    assert of(SendTo, rig.open("u1", WEB))[0].event.event_id == "n2"
    assert rig.engine.restore(records[:1], rig.now) == []


# -- duplicates the store knew and the engine had forgotten ------------------------


def test_already_stored_final_event_is_answered_not_redelivered() -> None:
    rig = Rig()
    rig.open("u1", WEB)
    event = ev()
    assert of(Persist, rig.engine.accept(event, rig.now))
    stored = StoredDelivery(event, DeliveryState.DELIVERED, START - 10, 1, WEB)
    actions = rig.engine.already_stored(stored, rig.now)
    assert actions == [SendAck("e1", AckStatus.DELIVERED, delivered_via=WEB)]
    assert rig.engine.pending_count() == 0
    assert rig.engine.counters.duplicates == 1
    assert rig.engine.accept(event, rig.now) == actions  # remembered from now on


def test_already_stored_pending_event_resumes_from_its_stored_attempts() -> None:
    rig = Rig()
    rig.open("u1", WEB)
    event = ev()
    rig.engine.accept(event, rig.now)
    stored = StoredDelivery(event, DeliveryState.PERSISTED, START - 10, 3)
    actions = rig.engine.already_stored(stored, rig.now)
    assert of(SendAck, actions) == [SendAck("e1", AckStatus.QUEUED)]
    assert only_send(actions).attempt == 4
    assert rig.engine.pending_count() == 1
