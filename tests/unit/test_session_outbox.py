"""The session outbox: bounded, drops informational first, never guaranteed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tradewire.sessions.outbox import Outbox, PutResult


def test_fifo_until_capacity() -> None:
    box = Outbox(3)
    for i in range(3):
        assert box.put(bytes([i]), guaranteed=True) is PutResult.QUEUED
    assert box.take(10) == [b"\x00", b"\x01", b"\x02"]


def test_full_drops_new_informational() -> None:
    box = Outbox(1)
    box.put(b"c", guaranteed=True)
    assert box.put(b"i", guaranteed=False) is PutResult.DROPPED
    assert box.dropped == 1
    assert box.take(5) == [b"c"]


def test_full_guaranteed_evicts_oldest_informational() -> None:
    box = Outbox(3)
    box.put(b"i1", guaranteed=False)
    box.put(b"c1", guaranteed=True)
    box.put(b"i2", guaranteed=False)
    assert box.put(b"c2", guaranteed=True) is PutResult.QUEUED_DROPPED_OLDER
    assert box.take(5) == [b"c1", b"i2", b"c2"]


def test_full_of_guaranteed_overflows_without_dropping() -> None:
    box = Outbox(2)
    box.put(b"c1", guaranteed=True)
    box.put(b"c2", guaranteed=True)
    assert box.put(b"c3", guaranteed=True) is PutResult.OVERFLOW
    assert box.dropped == 0
    assert box.take(5) == [b"c1", b"c2"]


@given(st.integers(1, 8), st.lists(st.booleans(), max_size=60))
def test_never_exceeds_capacity_nor_loses_guaranteed_silently(cap: int, kinds: list[bool]) -> None:
    box = Outbox(cap)
    accepted_guaranteed: list[bytes] = []
    for n, guaranteed in enumerate(kinds):
        data = n.to_bytes(2, "big")
        result = box.put(data, guaranteed=guaranteed)
        assert len(box) <= cap
        if guaranteed and result is not PutResult.OVERFLOW:
            accepted_guaranteed.append(data)
    out = box.take(len(kinds) + 1)
    assert [d for d in out if d in accepted_guaranteed] == accepted_guaranteed
    assert out == sorted(out)  # order preserved


def test_registry_reports_first_and_last_session_edges() -> None:
    from tradewire.sessions.registry import SessionRegistry

    reg: SessionRegistry[int] = SessionRegistry()
    assert reg.add("u1", 1) is True
    assert reg.add("u1", 2) is False
    assert reg.add("u10", 3) is True
    assert reg.sessions_of("u1") == [1, 2]
    assert reg.remove("u1", 1) is False
    assert reg.remove("u1", 1) is False  # already gone
    assert reg.remove("u1", 2) is True
    assert not reg.is_active("u1")
    assert reg.is_active("u10")
    assert len(reg) == 1


def test_an_emptied_outbox_gives_its_deque_back() -> None:
    box = Outbox(4)
    assert len(box) == 0 and box.take(3) == []
    box.put(b"a", guaranteed=False)
    box.put(b"b", guaranteed=True)
    assert box.take(1) == [b"a"] and len(box) == 1
    assert box.take(5) == [b"b"] and len(box) == 0
    assert box.put(b"c", guaranteed=True) is PutResult.QUEUED
    assert box.take(5) == [b"c"]
