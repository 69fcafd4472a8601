"""The container's durable outbox file and its resend schedule (no sockets)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradewire.delivery.backoff import BackoffPolicy
from tradewire.sdk._outbox import (
    AckEffect,
    OutboxEntry,
    OutboxFile,
    ResendSchedule,
    SendState,
    resend_delay_ms,
)
from tradewire.wire import AckStatus, EventAck

POLICY = BackoffPolicy(base_ms=100, cap_ms=1_000, jitter=0.0)


def entry(n: int) -> OutboxEntry:
    return OutboxEntry(f"e-{n}", b"\x20frame-%d" % n)


def ack(event_id: str, status: AckStatus) -> EventAck:
    return EventAck(event_id=event_id, status=status)


# -- the SQLite file ------------------------------------------------------------


def test_outbox_keeps_entries_across_reopen_until_finished(tmp_path: Path) -> None:
    path = tmp_path / "box" / "outbox.db"
    box = OutboxFile(path)
    assert box.commit([entry(1), entry(2), entry(3)], []) == [True, True, True]
    box.close()
    box = OutboxFile(path)
    assert box.pending() == [entry(1), entry(2), entry(3)]
    box.commit([entry(4)], ["e-2"])
    assert [e.event_id for e in box.pending()] == ["e-1", "e-3", "e-4"]
    assert len(box) == 3
    box.close()


def test_outbox_keeps_the_first_frame_of_a_repeated_event_id(tmp_path: Path) -> None:
    box = OutboxFile(tmp_path / "outbox.db")
    box.commit([entry(1)], [])
    assert box.commit([OutboxEntry("e-1", b"\x20other")], []) == [False]
    assert box.pending() == [entry(1)]
    box.close()


def test_outbox_is_wal_and_full_sync_by_default(tmp_path: Path) -> None:
    box = OutboxFile(tmp_path / "outbox.db")
    db = box._db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    box.close()


def test_a_failed_transaction_changes_nothing(tmp_path: Path) -> None:
    box = OutboxFile(tmp_path / "outbox.db")
    box.commit([entry(1)], [])
    with pytest.raises(sqlite3.ProgrammingError):
        box.commit([entry(2), OutboxEntry("e-3", object())], ["e-1"])  # type: ignore[arg-type]
    assert box.pending() == [entry(1)]
    box.close()


# -- backoff ----------------------------------------------------------------------


def test_resend_delay_doubles_up_to_the_cap() -> None:
    assert [resend_delay_ms(POLICY, n, "e") for n in range(1, 7)] == [
        100,
        200,
        400,
        800,
        1000,
        1000,
    ]


@given(st.integers(min_value=0, max_value=10_000), st.text(max_size=20))
def test_resend_delay_is_bounded_and_repeatable(sends: int, event_id: str) -> None:
    policy = BackoffPolicy(base_ms=1_000, cap_ms=15_000, jitter=0.2)
    delay = resend_delay_ms(policy, sends, event_id)
    assert 800 <= delay <= 15_000
    assert delay == resend_delay_ms(policy, sends, event_id)


# -- the schedule -----------------------------------------------------------------


def test_new_events_are_due_at_once_then_resent_with_backoff() -> None:
    s = ResendSchedule(POLICY, window=10, recheck_ms=None)
    s.add([entry(1)])
    assert s.next_deadline() == 0
    assert s.due(0) == [entry(1)]
    assert s.next_deadline() == 100
    assert s.due(99) == []
    assert s.due(100) == [entry(1)]  # same frame, same event_id
    assert s.next_deadline() == 300
    assert s.due(300) == [entry(1)]
    assert s.resends == 2


def test_queued_stops_resends_but_keeps_the_event_until_final() -> None:
    s = ResendSchedule(POLICY, window=10, recheck_ms=None)
    s.add([entry(1)])
    s.due(0)
    assert s.on_ack(ack("e-1", AckStatus.QUEUED), 5) is AckEffect.FIRST
    assert s.state_of("e-1") is SendState.QUEUED
    assert s.next_deadline() is None
    assert s.due(1_000_000) == []
    assert s.on_ack(ack("e-1", AckStatus.QUEUED), 6) is AckEffect.REPEAT
    assert s.on_ack(ack("e-1", AckStatus.DELIVERED), 7) is AckEffect.FINAL
    assert "e-1" not in s
    assert s.on_ack(ack("e-1", AckStatus.DELIVERED), 8) is AckEffect.UNKNOWN


def test_queued_events_are_rechecked_slowly_when_asked() -> None:
    s = ResendSchedule(POLICY, window=10, recheck_ms=5_000)
    s.add([entry(1)])
    s.due(0)
    s.on_ack(ack("e-1", AckStatus.QUEUED), 10)
    assert s.next_deadline() == 5_010
    assert s.due(5_010) == [entry(1)]
    assert s.next_deadline() == 10_010


def test_an_immediate_final_ack_is_the_first_and_the_final() -> None:
    s = ResendSchedule(POLICY, window=1, recheck_ms=None)
    s.add([entry(1), entry(2)])
    assert s.due(0) == [entry(1)]
    assert s.on_ack(ack("e-1", AckStatus.ACK_ERROR), 1) is AckEffect.FINAL
    assert s.unconfirmed() == 1
    assert s.due(1) == [entry(2)]


def test_the_window_bounds_what_is_on_the_wire() -> None:
    s = ResendSchedule(POLICY, window=2, recheck_ms=None)
    s.add([entry(n) for n in range(5)])
    assert s.due(0) == [entry(0), entry(1)]
    assert s.due(0) == []
    s.on_ack(ack("e-0", AckStatus.QUEUED), 1)
    assert s.next_deadline() == 0
    assert s.due(1) == [entry(2)]
    assert s.unconfirmed() == 4


def test_reconnect_resends_everything_unfinished_in_order() -> None:
    s = ResendSchedule(POLICY, window=10, recheck_ms=None)
    s.add([entry(n) for n in range(4)])
    s.due(0)
    s.on_ack(ack("e-1", AckStatus.QUEUED), 1)
    s.on_ack(ack("e-2", AckStatus.DELIVERED), 1)
    s.reconnected()
    assert s.due(2) == [entry(0), entry(1), entry(3)]  # the QUEUED one too


def test_an_ack_for_an_event_waiting_after_reconnect_is_not_resent() -> None:
    s = ResendSchedule(POLICY, window=1, recheck_ms=None)
    s.add([entry(0), entry(1)])
    s.due(0)
    s.reconnected()
    s.on_ack(ack("e-1", AckStatus.QUEUED), 1)  # a late ack from before the reconnect
    assert s.due(1) == [entry(0)]
    s.on_ack(ack("e-0", AckStatus.QUEUED), 2)
    assert s.due(2) == []


def test_a_full_socket_is_tried_again_after_the_base_delay() -> None:
    s = ResendSchedule(POLICY, window=10, recheck_ms=None)
    s.add([entry(1)])
    s.due(0)
    s.not_sent("e-1", 0)
    assert s.next_deadline() == 100


def test_adding_a_known_event_again_changes_nothing() -> None:
    s = ResendSchedule(POLICY, window=10, recheck_ms=None)
    s.add([entry(1)])
    s.add([entry(1)])
    assert len(s) == 1
    assert s.due(0) == [entry(1)]


@given(
    st.lists(
        st.tuples(st.integers(0, 9), st.sampled_from(list(AckStatus)) | st.just(None)),
        max_size=60,
    ),
    st.integers(1, 4),
)
def test_every_event_is_sent_until_its_final_ack(
    steps: list[tuple[int, AckStatus | None]], window: int
) -> None:
    """Whatever acks arrive, an event without a final ack is never forgotten."""
    s = ResendSchedule(POLICY, window=window, recheck_ms=None)
    s.add([entry(n) for n in range(10)])
    final: set[str] = set()
    now = 0
    for n, status in steps:
        now += 50
        s.due(now)
        if status is None:
            s.reconnected()
        else:
            s.on_ack(ack(f"e-{n}", status), now)
            if status is not AckStatus.QUEUED:
                final.add(f"e-{n}")
    unfinished = {f"e-{n}" for n in range(10)} - final
    assert {e for e in unfinished if e in s} == unfinished
    # driving the clock on eventually sends every unfinished, unqueued event
    sent: set[str] = set()
    for _ in range(200):
        now += 1_000
        sent |= {e.event_id for e in s.due(now)}
        for event_id in list(sent):
            s.on_ack(ack(event_id, AckStatus.QUEUED), now)
    assert {e for e in unfinished if s.state_of(e) is SendState.QUEUED} == unfinished
