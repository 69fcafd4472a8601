"""The engine's per-user ledger answers admission exactly like the list-based policy.

:class:`UserQueue` keeps the counts :func:`admit` used to recompute from the
user's whole pending list for every new event (quadratic for a burst). These
tests check it against :func:`admit` on random queues, and that admitting into
a queue that is not full never walks it; nothing here is timed.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tradewire.delivery import DeliveryConfig, DeliveryEngine, Event, LocalPresence, Priority
from tradewire.delivery._tracking import PendingDelivery, UserQueue
from tradewire.delivery.policy import PendingView, admit, admit_counted
from tradewire.delivery.states import DeliveryState

P = Priority
S = DeliveryState
PRIORITIES = st.sampled_from([P.INFORMATIONAL, P.NORMAL, P.CRITICAL])
STATES = st.sampled_from([S.RECEIVED, S.PERSISTED, S.DELIVERING, S.AWAITING_ACK, S.QUEUED])


def delivery(n: int, priority: Priority, state: DeliveryState) -> PendingDelivery:
    event = Event(event_id=f"e{n}", user_id="u", event_type=1, priority=priority)
    return PendingDelivery(event, n, 0, state, None)


def views(queue: UserQueue) -> list[PendingView]:
    return [
        PendingView(d.event.event_id, d.event.priority, d.state) for d in queue.deliveries.values()
    ]


@given(
    specs=st.lists(st.tuples(PRIORITIES, STATES), max_size=12),
    removed=st.sets(st.integers(0, 11)),
    newcomer=PRIORITIES,
    max_pending=st.integers(1, 8),
    max_critical=st.integers(1, 8),
)
def test_counted_admission_equals_admission_over_the_list(
    specs: list[tuple[Priority, DeliveryState]],
    removed: set[int],
    newcomer: Priority,
    max_pending: int,
    max_critical: int,
) -> None:
    config = DeliveryConfig(max_pending_per_user=max_pending, max_critical_per_user=max_critical)
    queue = UserQueue()
    items = [delivery(n, p, s) for n, (p, s) in enumerate(specs)]
    for item in items:
        queue.add(item)
    for n in sorted(removed):
        if n < len(items):
            queue.remove(items[n])
    pending = views(queue)
    counted = admit_counted(
        newcomer, len(queue), queue.critical, lambda: queue.victim(newcomer), config
    )
    assert counted == admit(newcomer, pending, config)
    assert queue.critical == sum(v.priority is P.CRITICAL for v in pending)


def test_the_victim_is_looked_for_only_when_the_queue_is_full() -> None:
    config = DeliveryConfig(max_pending_per_user=3)
    asked: list[int] = []

    def find_victim() -> str | None:
        asked.append(1)
        return None

    for pending in range(3):
        assert admit_counted(P.CRITICAL, pending, pending, find_victim, config).admitted
    assert asked == []
    assert admit_counted(P.CRITICAL, 3, 3, find_victim, config).admitted  # past the soft bound
    assert len(asked) == 1


def test_a_burst_for_one_user_keeps_one_ledger_in_step() -> None:
    engine = DeliveryEngine(DeliveryConfig(), LocalPresence())
    for n in range(3_000):
        engine.accept(Event(f"c{n}", "u", 1, P.CRITICAL), 0)
        engine.persisted(f"c{n}", 0)
    queue = engine._by_user["u"]
    assert len(queue) == queue.critical == 3_000  # CRITICAL is admitted past the soft bound
    assert engine.pending_ids("u")[:2] == ["c0", "c1"]
    assert queue.victim(P.CRITICAL) is None  # nothing evictable: CRITICAL never is
