"""``DeliveryEngine.surely_admits``: a yes is a promise that ``accept`` stores the event.

The intake journal acks QUEUED on that yes, before the engine sees the event;
the events of the same user queued ahead of it may reach the engine first.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tradewire.delivery import (
    DeliveryConfig,
    DeliveryEngine,
    Event,
    LocalPresence,
    Persist,
    Priority,
)

CONFIG = DeliveryConfig(max_pending_per_user=5, max_critical_per_user=3)
priorities = st.sampled_from(list(Priority))


def _event(n: int, user: str, priority: Priority) -> Event:
    return Event(event_id=f"e{n}", user_id=user, event_type=1, priority=priority)


@given(
    before=st.lists(st.tuples(st.sampled_from("ab"), priorities), max_size=10),
    ahead=st.lists(priorities, max_size=6),
    priority=priorities,
    known=st.booleans(),
)
def test_a_yes_means_accept_persists_after_the_events_ahead(
    before: list[tuple[str, Priority]], ahead: list[Priority], priority: Priority, known: bool
) -> None:
    engine = DeliveryEngine(CONFIG, LocalPresence())
    for n, (user, p) in enumerate(before):
        for action in engine.accept(_event(n, user, p), 0):
            if isinstance(action, Persist):
                engine.persisted(action.event.event_id, 0)
    event = _event(0 if known and before else 1000, "a", priority)
    critical_ahead = sum(p is Priority.CRITICAL for p in ahead)
    promised = engine.surely_admits(event, len(ahead), critical_ahead)
    for n, p in enumerate(ahead):
        engine.accept(_event(500 + n, "a", p), 0)
    actions = engine.accept(event, 0)
    if promised:
        assert actions == [Persist(event)]
    else:  # a no is only given for a reason the engine can act on
        assert (
            priority is Priority.INFORMATIONAL
            or (known and before)
            or len(before) + len(ahead) >= CONFIG.max_pending_per_user
            or critical_ahead + len(before) >= CONFIG.max_critical_per_user
        )


def test_an_event_already_pending_or_settled_is_never_promised() -> None:
    engine = DeliveryEngine(CONFIG, LocalPresence())
    event = _event(1, "a", Priority.CRITICAL)
    assert engine.surely_admits(event, 0, 0)
    engine.accept(event, 0)
    assert not engine.surely_admits(event, 0, 0)  # pending (not even stored yet)
    assert not engine.surely_admits(Event("", "a", 1, Priority.CRITICAL), 0, 0)
    assert not engine.surely_admits(Event("x", "", 1, Priority.CRITICAL), 0, 0)
