"""INFORMATIONAL events without a pending record: the same outcome as the full path.

The gateway's SUB pump asks ``DeliveryEngine.may_skip_record`` for each
INFORMATIONAL event, pushes the ones it may straight to the user's sessions
and reports them with ``settle_unrecorded``; everything else goes through
``accept``. The property test below runs one random sequence of batches,
session changes, acks and ticks through a model of the driver twice, once
with that shortcut and once with ``accept`` for everything, and requires the
same deliveries in the same order, the same counters, states, settled tallies
and duplicate answers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tradewire.delivery import (
    AckStatus,
    Action,
    BackoffPolicy,
    ChannelPreference,
    ChannelType,
    Delivered,
    DeliveryConfig,
    DeliveryEngine,
    DeliveryState,
    Event,
    LocalPresence,
    Persist,
    Priority,
    Retryable,
    SendAck,
    SendTo,
    Settle,
)

WEB, TELEGRAM, EMAIL = ChannelType.WEB, ChannelType.TELEGRAM, ChannelType.EMAIL
INFO, NORMAL, CRITICAL = Priority.INFORMATIONAL, Priority.NORMAL, Priority.CRITICAL
CONFIG = DeliveryConfig(
    normal_ttl_ms=20_000,
    ack_timeout_ms=3_000,
    critical_ack_timeout_ms=4_000,
    critical_deadline_ms=60_000,
    backoff=BackoffPolicy(base_ms=500, cap_ms=8_000, jitter=0.3),
    max_pending_per_user=3,
    max_critical_per_user=5,
    dedup_capacity=100,  # more than the ids used: the window never forgets here
)
DELIVERING = DeliveryState.DELIVERING
USERS = ["u1", "u10"]  # "u1" is a prefix of "u10": a ZeroMQ topic would match both


def info(eid: str, user: str = "u1", channels: tuple[ChannelPreference, ...] = ()) -> Event:
    return Event(eid, user, 1, INFO, channels, b"{}", 0)


def engine_with(*open_channels: tuple[str, ChannelType]) -> DeliveryEngine:
    presence = LocalPresence()
    for user, channel in open_channels:
        presence.open(user, channel)
    return DeliveryEngine(CONFIG, presence)


# -- the rules, example by example -------------------------------------------------------


def test_an_event_for_a_user_with_a_live_web_session_may_skip_its_record() -> None:
    engine = engine_with(("u1", WEB))
    assert engine.may_skip_record("e1", "u1", ())
    assert not engine.may_skip_record("e1", "u10", ())  # u10 has no session
    assert engine.pending_count() == 0  # asking changes nothing


def test_settling_counts_as_the_full_path_and_answers_duplicates() -> None:
    engine = engine_with(("u1", WEB))
    assert engine.settle_unrecorded("e1", delivered=True) is DeliveryState.DELIVERED
    assert engine.settle_unrecorded("e2", delivered=False) is DeliveryState.DROPPED
    c = engine.counters
    assert (c.accepted, c.attempts, c.delivered, c.dropped) == (2, 2, 1, 1)
    assert engine.state_of("e1") is DeliveryState.DELIVERED
    assert not engine.may_skip_record("e1", "u1", ())  # a duplicate: not delivered again
    assert engine.accept(info("e1"), 0) == [SendAck("e1", AckStatus.DELIVERED, delivered_via=WEB)]
    assert engine.accept(info("e2"), 0) == [
        SendAck("e2", AckStatus.ACK_ERROR, error="dropped: live channel failed")
    ]
    assert engine.counters.duplicates == 2


def test_no_shortcut_when_another_channel_comes_first() -> None:
    engine = engine_with(("u1", TELEGRAM), ("u1", WEB))
    assert not engine.may_skip_record("e1", "u1", ())  # ACTIVE_SESSION: Telegram opened first
    assert engine.may_skip_record("e1", "u1", (ChannelPreference(WEB),))
    assert not engine.may_skip_record("e1", "u1", (ChannelPreference(EMAIL),))


def test_no_shortcut_while_the_users_queue_is_full_or_holds_an_informational_event() -> None:
    engine = engine_with(("u1", WEB))
    engine.accept(info("i0"), 0)  # its send is still to come: later ones wait their turn
    assert not engine.may_skip_record("e1", "u1", ())
    engine = engine_with(("u1", WEB))
    for n in range(CONFIG.max_pending_per_user):
        engine.accept(Event(f"c{n}", "u1", 1, CRITICAL), 0)
    assert not engine.may_skip_record("e1", "u1", ())


def test_no_shortcut_for_empty_ids() -> None:
    engine = engine_with(("", WEB), ("u1", WEB))
    assert not engine.may_skip_record("", "u1", ())
    assert not engine.may_skip_record("e1", "", ())


# -- the property: shortcut == full path ---------------------------------------------------


@dataclass
class DriverModel:
    """What ``DeliveryDriver`` does with SUB batches and its other inputs, minus the I/O.

    ``refused`` are the event ids a full outbox would refuse. A send to WEB
    reaches the user's sessions (there are some exactly when presence says
    WEB is open); other channels never answer, so their events stay pending.
    """

    shortcut: bool
    refused: frozenset[str]
    presence: LocalPresence = field(default_factory=LocalPresence)
    delivered: list[tuple[str, str, bool]] = field(default_factory=list)
    settled: Counter[tuple[Priority, DeliveryState]] = field(default_factory=Counter)
    answers: list[list[SendAck]] = field(default_factory=list)
    awaiting: list[tuple[str, ChannelType]] = field(default_factory=list)
    seen_before: set[str] = field(default_factory=set)
    evicted_in_flight: bool = False

    def __post_init__(self) -> None:
        self.engine = DeliveryEngine(CONFIG, self.presence)

    def turn(self, inputs: list[tuple[str, Event | None]], now: int) -> None:
        """One turn of the driver: SUB frames, ROUTER frames and client acks, in order."""
        actions: list[Action] = []
        for source, event in inputs:
            if event is None:
                actions += self.client_ack(now)
            elif source == "sub" and self.may_skip(event):
                taken = self.push(event.user_id, event.event_id)
                state = self.engine.settle_unrecorded(event.event_id, delivered=taken)
                self.settled[INFO, state] += 1
            else:
                actions += self.accept(event, now)
        self.carry_out(actions, now)
        self.seen_before |= {event.event_id for _, event in inputs if event is not None}

    def may_skip(self, event: Event) -> bool:
        return (
            self.shortcut
            and event.priority is INFO
            and self.engine.may_skip_record(event.event_id, event.user_id, event.channels)
        )

    def accept(self, event: Event, now: int) -> list[Action]:
        duplicates = self.engine.counters.duplicates
        accepted = self.engine.accept(event, now)
        if self.engine.counters.duplicates > duplicates and event.event_id in self.seen_before:
            # (within one turn the full path's original is still in flight: no answer yet)
            self.answers.append([a for a in accepted if isinstance(a, SendAck)])
        return accepted

    def client_ack(self, now: int) -> list[Action]:
        if not self.awaiting:
            return []
        eid, channel = self.awaiting.pop(0)
        return self.engine.client_acked(eid, channel, now)

    def push(self, user: str, eid: str, guaranteed: bool = False) -> bool:
        if not self.presence.is_active(user, WEB) or eid in self.refused:
            return False
        self.delivered.append((user, eid, guaranteed))
        return True

    def carry_out(self, actions: list[Action], now: int) -> None:
        # as DeliveryDriver._carry_out: the writes (and what persisting starts) first
        while actions:
            follow: list[Action] = []
            for action in actions:
                if isinstance(action, Persist):
                    follow += self.engine.persisted(action.event.event_id, now)
                elif isinstance(action, Settle):
                    self.settled[action.event.priority, action.state] += 1
            for action in actions:
                if isinstance(action, SendTo):
                    follow += self.send_to(action, now)
            actions = follow

    def send_to(self, send: SendTo, now: int) -> list[Action]:
        event = send.event
        if send.channel is not WEB:
            return []
        if event.priority is INFO and self.engine.state_of(event.event_id) is not DELIVERING:
            self.evicted_in_flight = True
            return []  # evicted from a full queue after its send was decided: not pushed
        guaranteed = event.priority is not INFO
        if self.push(event.user_id, event.event_id, guaranteed):
            if guaranteed:
                self.awaiting.append((event.event_id, WEB))
            outcome: Delivered | Retryable = Delivered(WEB, needs_client_ack=guaranteed)
        else:
            outcome = Retryable("no live session took the event")
        return self.engine.attempt_result(event.event_id, WEB, send.attempt, outcome, now)

    def toggle(self, user: str, channel: ChannelType, now: int) -> None:
        if self.presence.is_active(user, channel):
            if self.presence.close(user, channel):
                self.carry_out(self.engine.session_closed(user, channel, now), now)
        elif self.presence.open(user, channel):
            self.carry_out(self.engine.session_opened(user, channel, now), now)

    def tick(self, now: int) -> None:
        self.carry_out(self.engine.tick(now), now)


channel_lists = st.lists(
    st.builds(
        ChannelPreference,
        st.sampled_from([ChannelType.ACTIVE_SESSION, WEB, TELEGRAM, EMAIL]),
        st.booleans(),
    ),
    max_size=2,
).map(tuple)
events = st.builds(
    Event,
    st.integers(0, 11).map(lambda n: f"e{n}"),  # a small pool: duplicates happen
    st.sampled_from(USERS),
    st.just(1),
    st.sampled_from([INFO, INFO, INFO, NORMAL, CRITICAL]),
    st.one_of(st.just(()), channel_lists),
    st.just(b"{}"),
)
inputs = st.one_of(
    st.tuples(st.sampled_from(["sub", "sub", "sub", "router"]), events),
    st.just(("ack", None)),  # the client acks the oldest guaranteed event it got
)


@dataclass(frozen=True)
class Turn:
    inputs: list[tuple[str, Event | None]]


@dataclass(frozen=True)
class Toggle:
    user: str
    channel: ChannelType


@dataclass(frozen=True)
class Tick:
    ms: int


steps = st.one_of(
    st.builds(Turn, st.lists(inputs, min_size=1, max_size=6)),
    st.builds(Toggle, st.sampled_from(USERS), st.sampled_from([WEB, TELEGRAM])),
    st.builds(Tick, st.integers(0, 5_000)),
)


def split(delivered: list[tuple[str, str, bool]]) -> dict[tuple[str, bool], list[str]]:
    """Deliveries per user and kind: guaranteed events wait for their commit, so
    one accepted in the same turn as an INFORMATIONAL event is sent after it."""
    out: dict[tuple[str, bool], list[str]] = {}
    for user, eid, guaranteed in delivered:
        out.setdefault((user, guaranteed), []).append(eid)
    return out


@settings(max_examples=400, deadline=None)
@given(st.lists(steps, max_size=30), st.frozensets(st.integers(0, 11).map(lambda n: f"e{n}")))
def test_the_shortcut_delivers_and_counts_exactly_as_the_full_path(
    script: list[Turn | Toggle | Tick], refused: frozenset[str]
) -> None:
    fast, full = DriverModel(True, refused), DriverModel(False, refused)
    now = 0
    for model in (fast, full):
        model.toggle("u1", WEB, now)  # most scripts start with a live session
    for step in script:
        if isinstance(step, Tick):
            now += step.ms
        for model in (fast, full):
            if isinstance(step, Turn):
                model.turn(step.inputs, now)
            elif isinstance(step, Toggle):
                model.toggle(step.user, step.channel, now)
            else:
                model.tick(now)
        # The full path counts an INFORMATIONAL event sent in the turn that
        # accepted it towards the user's queue bound, so a burst can evict one
        # whose send is already decided; the shortcut, whose events never wait,
        # delivers it. From there on the two do not see the same input.
        assume(not (fast.evicted_in_flight or full.evicted_in_flight))
        assert split(fast.delivered) == split(full.delivered)
        assert fast.engine.counters == full.engine.counters
        assert fast.settled == full.settled
        assert fast.answers == full.answers
        assert fast.engine.pending_count() == full.engine.pending_count()
    for n in range(12):
        assert fast.engine.state_of(f"e{n}") == full.engine.state_of(f"e{n}")
