"""The rate gate: token buckets, CRITICAL first, bounded queue; driven by a manual clock."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradewire.channels._pacer import Pacer
from tradewire.channels.ratelimit import Admitted, RateGate, RateWindow, WaitUntil
from tradewire.delivery.model import Priority
from tradewire.delivery.ports import ManualClock, RateLimit

N, C, INFO = Priority.NORMAL, Priority.CRITICAL, Priority.INFORMATIONAL
TELEGRAM = {"per_key": RateLimit(1, 1_000), "overall": RateLimit(30, 1_000)}


def drain(gate: RateGate, clock: ManualClock) -> list[tuple[int, Admitted]]:
    """Release everything, jumping the clock to each WaitUntil; (time, admitted) in order."""
    out: list[tuple[int, Admitted]] = []
    while (step := gate.next(clock.now_ms())) is not None:
        if isinstance(step, WaitUntil):
            assert step.at_ms > clock.now_ms()
            clock.set(step.at_ms)
            continue
        out.append((clock.now_ms(), step))
        gate.finished(step.key, clock.now_ms())
    return out


def test_window_allows_thirty_then_waits_for_the_oldest() -> None:
    window = RateWindow(RateLimit(30, 1_000))
    for n in range(30):
        assert window.ready_at(n * 10) == n * 10
        window.take(n * 10)
    assert window.ready_at(300) == 1_000  # the first use leaves the window
    window.take(1_000)
    assert window.ready_at(1_000) == 1_010


def test_window_hold_and_idle() -> None:
    window = RateWindow(RateLimit(1, 1_000))
    window.hold_until(5_000)
    assert window.ready_at(0) == 5_000
    assert not window.is_idle(4_999)
    assert window.is_idle(5_000)
    window.take(5_000)
    assert not window.is_idle(5_999) and window.is_idle(6_000)


def test_burst_of_fifty_to_one_chat_drains_at_one_per_second_critical_first() -> None:
    gate, clock = RateGate(**TELEGRAM), ManualClock()
    priorities = [C if n in (10, 40) else N for n in range(50)]
    tickets = [gate.offer("chat", p, 0) for p in priorities]
    released = drain(gate, clock)
    assert [t for _, a in released for t in [a.ticket]] == [
        tickets[10],
        tickets[40],
        *[t for n, t in enumerate(tickets) if n not in (10, 40)],
    ]
    assert [at for at, _ in released] == [n * 1_000 for n in range(50)]
    assert len(gate) == 0 and gate.refused == 0


def test_overall_limit_spreads_many_chats() -> None:
    gate, clock = RateGate(**TELEGRAM), ManualClock()
    for n in range(90):
        gate.offer(f"chat-{n}", N, 0)
    times = [at for at, _ in drain(gate, clock)]
    assert times == [0] * 30 + [1_000] * 30 + [2_000] * 30


def test_critical_overtakes_queued_traffic_across_chats() -> None:
    gate, clock = RateGate(per_key=RateLimit(1, 1_000), overall=RateLimit(1, 100)), ManualClock()
    normal = [gate.offer(f"a{n}", N, 0) for n in range(5)]
    info = gate.offer("b", INFO, 0)
    critical = gate.offer("c", C, 0)
    order = [a.ticket for _, a in drain(gate, clock)]
    assert order == [critical, *normal, info]


def test_a_ready_chat_is_not_held_up_by_a_waiting_critical() -> None:
    gate = RateGate(per_key=RateLimit(1, 1_000), overall=None)
    gate.offer("a", N, 0)
    first = gate.next(0)
    assert isinstance(first, Admitted)
    gate.finished("a", 0)
    critical = gate.offer("a", C, 0)  # chat a must wait a second
    other = gate.offer("b", N, 0)
    assert gate.next(0) == Admitted(other, "b")
    assert gate.next(0) == WaitUntil(1_000)
    assert gate.next(1_000) == Admitted(critical, "a")


def test_one_message_in_flight_per_chat() -> None:
    gate = RateGate(per_key=None, overall=None)
    first, second = gate.offer("a", N, 0), gate.offer("a", N, 0)
    other = gate.offer("b", N, 0)
    assert gate.next(0) == Admitted(first, "a")
    assert gate.next(0) == Admitted(other, "b")
    assert gate.next(0) is None  # a's second waits for the first to finish
    gate.finished("a", 5)
    assert gate.next(5) == Admitted(second, "a")


def test_hold_after_a_429() -> None:
    gate, clock = RateGate(**TELEGRAM), ManualClock()
    gate.offer("a", N, 0)
    gate.hold("a", 3_000, 0)
    gate.offer("b", N, 0)
    released = drain(gate, clock)
    assert [(at, a.key) for at, a in released] == [(0, "b"), (3_000, "a")]
    gate.offer("c", N, clock.now_ms())
    gate.hold(None, 10_000, clock.now_ms())
    assert gate.next(clock.now_ms()) == WaitUntil(10_000)


def test_queue_is_bounded_with_room_for_critical() -> None:
    gate = RateGate(per_key=None, overall=None, max_queued=3, critical_reserve=1)
    assert all(gate.offer("a", N, 0) is not None for _ in range(3))
    assert gate.offer("a", N, 0) is None
    assert gate.offer("a", C, 0) is not None
    assert gate.offer("a", C, 0) is None
    assert gate.refused == 2 and len(gate) == 4


def test_withdraw() -> None:
    gate = RateGate(per_key=None, overall=None)
    first, second = gate.offer("a", N, 0), gate.offer("a", C, 0)
    assert second is not None and first is not None
    assert gate.withdraw(second, 0)
    assert not gate.withdraw(second, 0)
    assert gate.next(0) == Admitted(first, "a")
    assert gate.next(0) is None


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        RateWindow(RateLimit(0, 1_000))
    with pytest.raises(ValueError):
        RateGate(per_key=None, overall=None, max_queued=0)


OFFERS = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=400),  # advance the clock first (ms)
        st.sampled_from(["a", "b", "c", "d"]),
        st.sampled_from([INFO, N, C]),
    ),
    max_size=80,
)


@settings(max_examples=150)
@given(OFFERS, st.integers(1, 3), st.integers(100, 1_500), st.integers(2, 6))
def test_limits_hold_and_nothing_is_lost(
    offers: list[tuple[int, str, Priority]], per_count: int, per_ms: int, overall_count: int
) -> None:
    per_key, overall = RateLimit(per_count, per_ms), RateLimit(overall_count, 1_000)
    gate, clock = RateGate(per_key=per_key, overall=overall), ManualClock()
    offered: dict[int, tuple[str, Priority]] = {}
    released: list[tuple[int, Admitted]] = []
    for advance, key, priority in offers:
        clock.advance(advance)
        while isinstance(step := gate.next(clock.now_ms()), Admitted):
            released.append((clock.now_ms(), step))
            gate.finished(step.key, clock.now_ms())
        ticket = gate.offer(key, priority, clock.now_ms())
        assert ticket is not None
        offered[ticket] = (key, priority)
    released += drain(gate, clock)
    assert sorted(a.ticket for _, a in released) == sorted(offered)
    by_key: dict[str, list[int]] = defaultdict(list)
    for at, admitted in released:
        by_key[admitted.key].append(at)
        assert offered[admitted.ticket][0] == admitted.key
    for times in by_key.values():
        for i, at in enumerate(times):
            assert sum(at <= t < at + per_ms for t in times[i:]) <= per_count
    everything = [at for at, _ in released]
    for i, at in enumerate(everything):
        assert sum(at <= t < at + 1_000 for t in everything[i:]) <= overall_count


@given(st.lists(st.sampled_from([INFO, N, C]), min_size=1, max_size=40))
def test_within_one_chat_priority_then_fifo(priorities: list[Priority]) -> None:
    gate, clock = RateGate(**TELEGRAM), ManualClock()
    tickets = [gate.offer("chat", p, 0) for p in priorities]
    order = [a.ticket for _, a in drain(gate, clock)]
    expected = sorted(range(len(priorities)), key=lambda n: (-priorities[n], n))
    assert order == [tickets[n] for n in expected]


# -- the asyncio pacer (no sockets) ----------------------------------------------------


class _WallClock:
    def now_ms(self) -> int:
        return int(asyncio.get_running_loop().time() * 1000)


async def test_pacer_admits_in_order_and_leaves_no_task() -> None:
    pacer = Pacer(RateGate(per_key=RateLimit(1, 10), overall=None), _WallClock())
    order: list[int] = []

    async def send(n: int, priority: Priority) -> None:
        async with pacer.turn("chat", priority) as admitted:
            assert admitted
            order.append(n)

    await asyncio.gather(*(send(n, C if n == 3 else N) for n in range(6)))
    assert order == [3, 0, 1, 2, 4, 5]
    await asyncio.sleep(0)
    await pacer.aclose()
    assert pacer._task is None


async def test_pacer_close_releases_waiters_with_false() -> None:
    pacer = Pacer(RateGate(per_key=RateLimit(1, 60_000), overall=None), _WallClock())
    results: list[bool] = []

    async def send() -> None:
        async with pacer.turn("chat", N) as admitted:
            results.append(admitted)

    first = asyncio.create_task(send())
    await first
    waiting = asyncio.create_task(send())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await pacer.aclose()
    await waiting
    assert results == [True, False]
    async with pacer.turn("chat", N) as admitted:
        assert not admitted


async def test_pacer_cancelled_waiter_gives_its_place_back() -> None:
    gate = RateGate(per_key=RateLimit(1, 60_000), overall=None)
    pacer = Pacer(gate, _WallClock())
    async with pacer.turn("chat", N):
        pass
    waiting = asyncio.create_task(pacer.turn("chat", N).__aenter__())
    await asyncio.sleep(0.01)
    assert len(gate) == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert len(gate) == 0
    await pacer.aclose()
