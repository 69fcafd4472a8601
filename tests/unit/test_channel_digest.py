"""The digest buffer: windows per key, closed by time, size or drain (no sockets, manual time)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tradewire.channels.digest import Digest, DigestBuffer


def test_first_item_opens_a_window_that_later_items_join() -> None:
    buffer: DigestBuffer[str] = DigestBuffer(window_ms=100)

    assert buffer.add("alice", "a1", "first", now_ms=1_000) == 1_100
    assert buffer.add("alice", "a2", "second", now_ms=1_099) == 1_100
    assert buffer.next_deadline() == 1_100
    assert buffer.due(1_099) == []

    [digest] = buffer.due(1_100)

    assert digest == Digest("alice", ("first", "second"), ("a1", "a2"), opened_ms=1_000)
    assert len(buffer) == 0
    assert buffer.next_deadline() is None


def test_keys_have_their_own_windows() -> None:
    buffer: DigestBuffer[str] = DigestBuffer(window_ms=100)
    buffer.add("alice", "a1", "a", now_ms=0)
    buffer.add("bob", "b1", "b", now_ms=50)

    assert [d.key for d in buffer.due(100)] == ["alice"]
    assert buffer.next_deadline() == 150
    assert [d.key for d in buffer.due(150)] == ["bob"]


def test_an_item_after_the_deadline_opens_a_new_window() -> None:
    buffer: DigestBuffer[str] = DigestBuffer(window_ms=100)
    buffer.add("alice", "a1", "old", now_ms=0)

    assert buffer.add("alice", "a2", "new", now_ms=100) == 200

    assert [d.items for d in buffer.due(100)] == [("old",)]
    assert [d.items for d in buffer.due(200)] == [("new",)]


def test_a_full_window_closes_at_once() -> None:
    buffer: DigestBuffer[int] = DigestBuffer(window_ms=1_000, max_items=2)
    buffer.add("alice", "1", 1, now_ms=0)

    assert buffer.add("alice", "2", 2, now_ms=5) == 5
    assert buffer.next_deadline() is not None
    assert buffer.next_deadline() <= 5  # type: ignore[operator]
    assert [d.items for d in buffer.due(5)] == [(1, 2)]


def test_window_zero_makes_every_item_its_own_digest() -> None:
    buffer: DigestBuffer[int] = DigestBuffer(window_ms=0)
    buffer.add("alice", "1", 1, now_ms=7)
    buffer.add("alice", "2", 2, now_ms=7)

    assert [d.items for d in buffer.due(7)] == [(1,), (2,)]


def test_a_repeated_id_is_not_added_twice() -> None:
    buffer: DigestBuffer[str] = DigestBuffer(window_ms=100)
    buffer.add("alice", "a1", "first", now_ms=0)
    buffer.add("alice", "a1", "again", now_ms=10)

    assert buffer.is_waiting("alice", "a1")
    assert [d.items for d in buffer.drain()] == [("first",)]


def test_withdraw_takes_an_item_back_until_its_window_closes() -> None:
    buffer: DigestBuffer[str] = DigestBuffer(window_ms=100)
    buffer.add("alice", "a1", "x", now_ms=0)
    buffer.add("alice", "a2", "y", now_ms=0)

    assert buffer.withdraw("alice", "a1")
    assert not buffer.withdraw("alice", "a1")
    assert buffer.withdraw("alice", "a2")
    assert buffer.next_deadline() is None  # the empty window is gone
    buffer.add("alice", "a3", "z", now_ms=10)
    buffer.due(110)
    assert not buffer.withdraw("alice", "a3")


def test_drain_closes_everything() -> None:
    buffer: DigestBuffer[str] = DigestBuffer(window_ms=100)
    buffer.add("alice", "a1", "x", now_ms=0)
    buffer.add("bob", "b1", "y", now_ms=0)

    assert sorted(d.key for d in buffer.drain()) == ["alice", "bob"]
    assert len(buffer) == 0


@pytest.mark.parametrize(("window", "max_items"), [(-1, 1), (0, 0)])
def test_bad_settings_are_refused(window: int, max_items: int) -> None:
    with pytest.raises(ValueError):
        DigestBuffer(window_ms=window, max_items=max_items)


@dataclass(frozen=True)
class _Added:
    key: str
    item_id: str
    at_ms: int


_KEYS = st.sampled_from(["alice", "bob", "carol"])


class DigestMachine(RuleBasedStateMachine):
    """Random adds, withdrawals, time steps and flushes against a simple model."""

    def __init__(self) -> None:
        super().__init__()
        self.window = 100
        self.max_items = 3
        self.buffer: DigestBuffer[_Added] = DigestBuffer(self.window, self.max_items)
        self.now = 0
        self.counter = 0
        self.waiting: dict[str, _Added] = {}
        self.withdrawn: set[str] = set()
        self.out: list[Digest[_Added]] = []

    @rule(key=_KEYS)
    def add(self, key: str) -> None:
        self.counter += 1
        item = _Added(key, f"{key}-{self.counter}", self.now)
        deadline = self.buffer.add(key, item.item_id, item, self.now)
        assert self.now <= deadline <= self.now + self.window
        self.waiting[item.item_id] = item

    @precondition(lambda self: bool(self.waiting))
    @rule(data=st.data())
    def withdraw(self, data: st.DataObject) -> None:
        item_id = data.draw(st.sampled_from(sorted(self.waiting)))
        item = self.waiting[item_id]
        if self.buffer.withdraw(item.key, item_id):
            self.withdrawn.add(item_id)
            del self.waiting[item_id]

    @rule(ms=st.integers(min_value=0, max_value=150))
    def advance(self, ms: int) -> None:
        self.now += ms

    @rule()
    def flush(self) -> None:
        deadline = self.buffer.next_deadline()
        digests = self.buffer.due(self.now)
        if deadline is None or deadline > self.now:
            assert digests == []
        self._take(digests)

    def _take(self, digests: list[Digest[_Added]]) -> None:
        for digest in digests:
            assert 1 <= len(digest.items) <= self.max_items
            assert all(i.key == digest.key for i in digest.items)
            assert [i.item_id for i in digest.items] == list(digest.item_ids)
            assert [i.at_ms for i in digest.items] == sorted(i.at_ms for i in digest.items)
            assert all(
                digest.opened_ms <= i.at_ms < digest.opened_ms + self.window for i in digest.items
            )
            for item in digest.items:
                assert item.item_id in self.waiting, "sent twice or after withdrawal"
                del self.waiting[item.item_id]
            self.out.append(digest)

    @invariant()
    def nothing_lost(self) -> None:
        assert len(self.buffer) == len(self.waiting)

    def teardown(self) -> None:
        self._take(self.buffer.drain())
        assert self.waiting == {}
        sent = [i.item_id for d in self.out for i in d.items]
        assert len(sent) == len(set(sent))
        assert not self.withdrawn & set(sent)


TestDigestMachine = DigestMachine.TestCase


@given(
    times=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=40),
    window=st.integers(min_value=0, max_value=2_000),
)
def test_windows_are_greedy_and_never_longer_than_configured(times: list[int], window: int) -> None:
    """With a timer firing at each deadline, one key's arrivals split into maximal windows."""
    buffer: DigestBuffer[int] = DigestBuffer(window_ms=window, max_items=1_000)
    digests: list[Digest[int]] = []
    arrivals = sorted(times)
    for n, now in enumerate(arrivals):
        digests += buffer.due(now)
        buffer.add("alice", str(n), now, now)
    digests += buffer.due(arrivals[-1] + window)

    assert [t for d in digests for t in d.items] == arrivals
    for digest in digests:
        assert digest.opened_ms == digest.items[0]
        assert all(t < digest.opened_ms + window for t in digest.items) or window == 0
    for earlier, later in itertools.pairwise(digests):
        assert later.opened_ms >= earlier.opened_ms + window


def test_event_ids_cannot_inject_mail_headers() -> None:
    from tradewire.channels._email_message import header_safe

    assert header_safe("evt-1") == "evt-1"
    assert header_safe("a\r\nBcc: x@evil") == "a%0D%0ABcc: x@evil"
    assert header_safe("\x00\x7f") == "%00%7F"
