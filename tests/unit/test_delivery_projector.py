"""The delivery projector on a real SQLite file: batched runs == one record at a time.

The writer hands the projector whole batches (one ``executemany`` per run of
records of one kind); ``tradewire rebuild`` replays plain stored bytes. Both
must leave the same ``deliveries`` and ``delivery_attempts`` rows as
projecting every record alone, for any interleaving of events, attempts and
settles; and attempt/settle records that carry their event's seq (written
since revision 0007) must project like those that do not (older logs, late
results), whose event the projector looks up.
"""

from __future__ import annotations

import dataclasses
import functools
import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from tradewire.delivery import ChannelType, DeliveryState, Event, Priority, RecordAttempt, Settle
from tradewire.delivery.actions import AttemptOutcome
from tradewire.server.delivery_store import (
    DeliveryProjector,
    EventFrame,
    attempt_record,
    settle_record,
    user_event_record,
)
from tradewire.store import Record, StoredRecord
from tradewire.store.migrations import sqlite_url, upgrade_schema


def _event(n: int) -> Event:
    return Event(
        event_id=f"e-{n}",
        user_id=f"u-{n % 3}",
        event_type=n % 5,
        priority=Priority.CRITICAL if n % 2 else Priority.NORMAL,
        channels=(),
        payload=b"{}",
        timestamp_ms=1_000 + n,
    )


def _records(plan: list[tuple[str, int, bool]]) -> list[Record]:
    """Records in log order: the event first, then its attempts and settle in plan order.

    The third item of a step says whether its record carries the event's seq
    (the records get seqs 1, 2, ... in this order, see ``_stored``).
    """
    out: list[Record] = []
    attempts: dict[int, int] = {}
    seqs: dict[int, int] = {}
    settled: set[int] = set()
    for what, n, with_seq in plan:
        event = _event(n)
        if n not in attempts:
            attempts[n] = 0
            seqs[n] = len(out) + 1
            out.append(user_event_record(event, 5_000 + len(out)))
        seq = seqs[n] if with_seq else None
        if what == "attempt":
            attempts[n] += 1
            row = RecordAttempt(
                event.event_id,
                ChannelType.TELEGRAM,
                attempts[n],
                AttemptOutcome.RETRYABLE,
                "429",
                6_000 + len(out),
            )
            out.append(attempt_record(row, event.user_id, seq))
        elif what == "settle" and n not in settled:  # one per event (its key is unique)
            settled.add(n)
            final = Settle(event, DeliveryState.DELIVERED, ChannelType.WEB, None, 7_000 + len(out))
            out.append(settle_record(final, seq))
    return out


def _stored(records: list[Record], *, plain: bool) -> list[StoredRecord]:
    return [
        (replace(r, body=bytes(r.body)) if plain else r).stored(seq)
        for seq, r in enumerate(records, start=1)
    ]


_DELIVERY_COLUMNS = (
    "event_id, user_id, event_type, priority, state, delivered_via, attempts, reason,"
    " accepted_at_ms, updated_at_ms, seq"
)
_ATTEMPT_COLUMNS = "seq, delivery_seq, event_id, attempt, channel, outcome, error, at_ms"


@functools.cache
def _template() -> bytes:
    """An empty database at the newest schema (migrating once, not per example)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "template.db"
        upgrade_schema(sqlite_url(path))
        return path.read_bytes()


def _tables(path: Path, records: list[StoredRecord], *, batched: bool) -> list[list[tuple]]:  # type: ignore[type-arg]
    path.write_bytes(_template())
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.executemany(  # as the writer does before projecting (the projector looks events up)
            'INSERT INTO records (seq, stream, "key", body, kind, created_at_ms, user_id)'
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (r.seq, r.stream, r.key, bytes(r.body), r.kind, r.created_at_ms, r.user_id)
                for r in records
            ],
        )
        projector = DeliveryProjector()
        if batched:
            assert projector.apply_batch(conn, records) is None
        else:
            for record in records:
                assert projector.apply(conn, record) is None
        return [
            conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries ORDER BY event_id"
            ).fetchall(),
            conn.execute(
                f"SELECT {_ATTEMPT_COLUMNS} FROM delivery_attempts ORDER BY seq"
            ).fetchall(),
        ]
    finally:
        conn.close()


_PLANS = st.lists(
    st.tuples(st.sampled_from(["event", "attempt", "settle"]), st.integers(0, 6), st.booleans()),
    max_size=30,
)


@settings(
    max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(plan=_PLANS)
def test_batched_and_replayed_projection_equal_one_record_at_a_time(
    tmp_path_factory: object, plan: list[tuple[str, int, bool]]
) -> None:
    base = Path(tmp_path_factory.mktemp("proj"))  # type: ignore[attr-defined]
    records = _records(plan)
    one_by_one = _tables(base / "a.db", _stored(records, plain=False), batched=False)
    assert _tables(base / "b.db", _stored(records, plain=False), batched=True) == one_by_one
    assert _tables(base / "c.db", _stored(records, plain=True), batched=True) == one_by_one
    legacy = _records([(what, n, False) for what, n, _ in plan])  # no record carries a seq
    assert _tables(base / "d.db", _stored(legacy, plain=True), batched=True) == one_by_one


def test_a_settled_event_with_attempts(tmp_path: Path) -> None:
    records = _records(
        [("attempt", 1, True), ("attempt", 1, False), ("event", 2, True), ("settle", 1, True)]
    )
    assert isinstance(records[0].body, EventFrame)
    deliveries, attempts = _tables(tmp_path / "t.db", _stored(records, plain=True), batched=True)
    by_id = {row[0]: row for row in deliveries}
    assert set(by_id) == {"e-1", "e-2"}
    columns = ("event_id", "user_id", "event_type", "priority", "state", "delivered_via")
    assert dict(zip(columns, by_id["e-1"][:6], strict=True)) == {
        "event_id": "e-1",
        "user_id": "u-1",
        "event_type": 1,
        "priority": int(Priority.CRITICAL),
        "state": "delivered",
        "delivered_via": int(ChannelType.WEB),
    }
    assert by_id["e-2"][4] == "pending"
    assert by_id["e-1"][6] == 2  # both attempts counted
    assert [(a[1], a[2], a[3], a[5]) for a in attempts] == [
        (1, "e-1", 1, "retryable"),  # delivery_seq: the seq of e-1's record
        (1, "e-1", 2, "retryable"),
    ]


def test_attempt_and_settle_keys_append_and_never_meet_the_older_form() -> None:
    event = _event(1)
    row = RecordAttempt(event.event_id, ChannelType.WEB, 1, AttemptOutcome.ACKED, None, 9)
    final = Settle(event, DeliveryState.DELIVERED, ChannelType.WEB, None, 9)
    assert attempt_record(row, None).key == f"e-1/1/{int(ChannelType.WEB)}/acked"
    assert settle_record(final).key == "e-1/final"
    assert attempt_record(row, None, 42).key == f"000000000042:1:{int(ChannelType.WEB)}:acked"
    assert settle_record(final, 42).key == "000000000042:final"
    keys = [settle_record(final, seq).key for seq in (9, 10, 99, 100, 12345)]
    assert keys == sorted(keys)  # zero-padded: later events sort last, their inserts append
    digits = dataclasses.replace(_event(0), event_id="000000000042")
    older = Settle(digits, DeliveryState.DELIVERED, None, None, 9)
    assert settle_record(older).key != settle_record(final, 42).key
