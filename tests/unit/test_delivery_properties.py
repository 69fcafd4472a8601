"""Random input sequences never break the delivery invariants (hypothesis, stateful).

Invariants checked after every step and at the end:

* states only move along the transition table (``advance`` raises otherwise) and
  a settled event never comes back;
* an event is settled, and so finally acked, at most once; the final ack
  directly follows the ``Settle`` and matches it; nothing is sent after it;
* QUEUED is never acked before the event is durable;
* CRITICAL is never dropped or expired, and fails only at its deadline or when
  no channel could ever deliver it;
* once every send is answered and time runs out, every accepted event has
  exactly one final ack.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tradewire.delivery import (
    AckStatus,
    Action,
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
    PermanentFailure,
    Persist,
    Priority,
    Retryable,
    SendAck,
    SendTo,
    Settle,
    is_final,
)

CONFIG = DeliveryConfig(
    normal_ttl_ms=20_000,
    ack_timeout_ms=3_000,
    critical_ack_timeout_ms=4_000,
    critical_deadline_ms=60_000,
    backoff=BackoffPolicy(base_ms=500, cap_ms=8_000, jitter=0.3),
    max_pending_per_user=4,
    max_critical_per_user=6,
)
LIVE = [ChannelType.WEB, ChannelType.TELEGRAM]
ALL = [ChannelType.ACTIVE_SESSION, *LIVE, ChannelType.EMAIL, ChannelType.PUSH]
preference = st.builds(ChannelPreference, st.sampled_from(ALL), st.booleans())
outcomes: st.SearchStrategy[DeliveryOutcome] = st.one_of(
    st.builds(Delivered, st.just(ChannelType.WEB), st.booleans()),
    st.builds(Retryable, st.just("busy"), st.none() | st.integers(0, 20_000)),
    st.builds(PermanentFailure, st.just("gone")),
)


class DeliveryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0
        self.presence = LocalPresence()
        self.engine = DeliveryEngine(CONFIG, self.presence)
        self.events: dict[str, Event] = {}
        self.accepted_at: dict[str, int] = {}
        self.admitted: set[str] = set()
        self.unpersisted: list[str] = []
        self.durable: set[str] = set()
        self.outstanding: list[SendTo] = []
        self.settled: Counter[str] = Counter()
        self.final_acks: Counter[str] = Counter()
        self.final_seen: dict[str, DeliveryState] = {}

    # -- checking every batch of actions -------------------------------------------

    def absorb(self, actions: Sequence[Action], *, answer_to_accept: str | None = None) -> None:
        for i, action in enumerate(actions):
            if isinstance(action, SendTo):
                assert self.settled[action.event.event_id] == 0, "sent after settling"
                self.outstanding.append(action)
            elif isinstance(action, Persist):
                self.unpersisted.append(action.event.event_id)
            elif isinstance(action, Settle):
                self.check_settle(action, actions[i + 1 :])
            elif isinstance(action, SendAck):
                after_settle = i > 0 and isinstance(actions[i - 1], Settle)
                self.check_ack(action, after_settle, answer_to_accept)

    def check_settle(self, settle: Settle, rest: Sequence[Action]) -> None:
        eid = settle.event.event_id
        self.settled[eid] += 1
        assert self.settled[eid] == 1, "settled twice"
        assert is_final(settle.state)
        ack = rest[0]
        assert isinstance(ack, SendAck) and ack.event_id == eid
        assert (ack.status is AckStatus.DELIVERED) == (settle.state is DeliveryState.DELIVERED)
        if settle.event.priority is Priority.CRITICAL:
            assert settle.state not in (DeliveryState.DROPPED, DeliveryState.EXPIRED)
            if settle.state is DeliveryState.FAILED:
                at_deadline = settle.at_ms >= self.accepted_at[eid] + CONFIG.critical_deadline_ms
                assert at_deadline or (settle.reason or "").startswith("undeliverable")

    def check_ack(self, ack: SendAck, after_settle: bool, answer_to_accept: str | None) -> None:
        if ack.status is AckStatus.QUEUED:
            assert ack.event_id in self.durable, "QUEUED before durable"
        elif after_settle:
            self.final_acks[ack.event_id] += 1
            assert self.final_acks[ack.event_id] == 1, "two final acks"
        else:
            # Not a settlement: only a duplicate's answer or a refusal at the door.
            assert ack.event_id == answer_to_accept, "unsolicited final ack"

    # -- inputs --------------------------------------------------------------------

    @rule(
        n=st.integers(0, 7),
        user=st.sampled_from(["u1", "u2"]),
        priority=st.sampled_from(Priority),
        channels=st.lists(preference, max_size=3).map(tuple),
        persist_now=st.booleans(),
    )
    def accept(
        self,
        n: int,
        user: str,
        priority: Priority,
        channels: tuple[ChannelPreference, ...],
        persist_now: bool,
    ) -> None:
        eid = f"e{n}"
        event = self.events.get(eid) or Event(eid, user, 1, priority, channels, b"{}", 0)
        known = self.engine.state_of(eid) is not None
        actions = self.engine.accept(event, self.now)
        if not known and (any(isinstance(a, (Persist, Settle, SendTo)) for a in actions)):
            self.events[eid] = event
            self.accepted_at[eid] = self.now
            self.admitted.add(eid)
        self.absorb(actions, answer_to_accept=eid)
        if persist_now:
            self.persist_all()

    @rule()
    def persist_all(self) -> None:
        while self.unpersisted:
            eid = self.unpersisted.pop(0)
            self.durable.add(eid)
            self.absorb(self.engine.persisted(eid, self.now))

    @rule(user=st.sampled_from(["u1", "u2"]), channel=st.sampled_from(LIVE))
    def open_session(self, user: str, channel: ChannelType) -> None:
        self.presence.open(user, channel)
        self.absorb(self.engine.session_opened(user, channel, self.now))

    @rule(user=st.sampled_from(["u1", "u2"]), channel=st.sampled_from(LIVE))
    def close_session(self, user: str, channel: ChannelType) -> None:
        if self.presence.close(user, channel):
            self.absorb(self.engine.session_closed(user, channel, self.now))

    @precondition(lambda self: bool(self.outstanding))
    @rule(index=st.integers(0, 50), outcome=outcomes)
    def answer_send(self, index: int, outcome: DeliveryOutcome) -> None:
        send = self.outstanding.pop(index % len(self.outstanding))
        actions = self.engine.attempt_result(
            send.event.event_id, send.channel, send.attempt, outcome, self.now
        )
        self.absorb(actions)

    @rule(n=st.integers(0, 7), channel=st.sampled_from(LIVE))
    def client_ack(self, n: int, channel: ChannelType) -> None:
        self.absorb(self.engine.client_acked(f"e{n}", channel, self.now))

    @rule(ms=st.integers(0, 10_000))
    def advance(self, ms: int) -> None:
        self.now += ms
        self.absorb(self.engine.tick(self.now))

    @rule()
    def jump_to_next_timer(self) -> None:
        deadline = self.engine.next_deadline()
        if deadline is not None:
            assert deadline >= self.now
            self.now = deadline
            self.absorb(self.engine.tick(self.now))

    # -- invariants ----------------------------------------------------------------

    @invariant()
    def settled_events_stay_settled(self) -> None:
        for eid in self.admitted:
            state = self.engine.state_of(eid)
            if eid in self.final_seen:
                assert state is self.final_seen[eid]
            elif state is not None and is_final(state):
                assert self.settled[eid] == 1
                self.final_seen[eid] = state

    @invariant()
    def no_timer_in_the_past(self) -> None:
        deadline = self.engine.next_deadline()
        assert deadline is None or deadline > self.now

    def teardown(self) -> None:
        """Answer everything with a failure and let time run out: all must settle once."""
        self.persist_all()
        for _ in range(10_000):
            while self.outstanding:
                self.answer_send(0, Retryable("still down"))
            deadline = self.engine.next_deadline()
            if deadline is None:
                break
            self.now = max(self.now, deadline)
            self.absorb(self.engine.tick(self.now))
        for eid in self.admitted:
            assert self.settled[eid] == 1, (eid, self.engine.state_of(eid))
            assert self.final_acks[eid] == 1, eid
        assert not any(self.engine.pending_ids(u) for u in ("u1", "u2"))


DeliveryMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None
)
test_delivery_invariants = DeliveryMachine.TestCase
