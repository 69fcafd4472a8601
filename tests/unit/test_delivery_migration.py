"""Revision 0007 re-keys ``deliveries`` and ``delivery_attempts`` by seq: no row is lost.

A data dir written at revision 0006 (records in the log, the two tables as
the projector of that time left them, an attempt whose event was never
stored among them) is opened by the current store: every delivery and
attempt is still there with the same meaning, the API reads them as before,
``tradewire rebuild`` replays the log into the very same rows, and a
downgrade gives the 0006 tables back.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config

from tradewire.delivery import ChannelType, DeliveryState, Event, Priority, RecordAttempt, Settle
from tradewire.delivery.actions import AttemptOutcome
from tradewire.ingest.rebuild import rebuild_projections
from tradewire.server.delivery_store import (
    DeliveryProjector,
    attempt_record,
    event_history,
    settle_record,
    user_event_record,
    user_inbox,
)
from tradewire.store import Record
from tradewire.store.migrations import SCRIPT_LOCATION, sqlite_url, upgrade_schema
from tradewire.store.sqlite import DB_FILENAME, open_store

WEB, TELEGRAM = int(ChannelType.WEB), int(ChannelType.TELEGRAM)


def _event(event_id: str, user_id: str) -> Event:
    return Event(
        event_id=event_id,
        user_id=user_id,
        event_type=3,
        priority=Priority.CRITICAL,
        channels=(),
        payload=b"{}",
        timestamp_ms=1_000,
    )


E1, E2, E3 = _event("e1", "u1"), _event("e2", "u1"), _event("e3", "u2")
# The log as revision 0006 wrote it (seq = position + 1): older keys, no seq in bodies.
LOG: list[Record] = [
    user_event_record(E1, 10),
    user_event_record(E2, 11),
    attempt_record(RecordAttempt("e1", ChannelType.WEB, 1, AttemptOutcome.SENT, None, 12), None),
    attempt_record(
        RecordAttempt("e2", ChannelType.TELEGRAM, 1, AttemptOutcome.RETRYABLE, "429", 13), None
    ),
    attempt_record(RecordAttempt("e1", ChannelType.WEB, 1, AttemptOutcome.ACKED, None, 14), None),
    settle_record(Settle(E1, DeliveryState.DELIVERED, ChannelType.WEB, None, 15)),
    user_event_record(E3, 16),
    # a late channel result of an INFORMATIONAL event (never stored): no delivery of its own
    attempt_record(
        RecordAttempt("info-1", ChannelType.TELEGRAM, 1, AttemptOutcome.DELIVERED, None, 17), None
    ),
]
# (event_id, user_id, event_type, priority, state, delivered_via, attempts, reason,
#  accepted_at_ms, updated_at_ms, seq): as 0006's projector left them
DELIVERIES = [
    ("e1", "u1", 3, int(Priority.CRITICAL), "delivered", WEB, 1, None, 10, 15, 1),
    ("e2", "u1", 3, int(Priority.CRITICAL), "pending", None, 1, None, 11, 13, 2),
    ("e3", "u2", 3, int(Priority.CRITICAL), "pending", None, 0, None, 16, 16, 7),
]
# (seq, event_id, attempt, channel, outcome, error, at_ms)
ATTEMPTS = [
    (3, "e1", 1, WEB, "sent", None, 12),
    (4, "e2", 1, TELEGRAM, "retryable", "429", 13),
    (5, "e1", 1, WEB, "acked", None, 14),
    (8, "info-1", 1, TELEGRAM, "delivered", None, 17),
]
DELIVERY_SEQ = {"e1": 1, "e2": 2, "info-1": None}

_DELIVERY_COLUMNS = (
    "event_id, user_id, event_type, priority, state, delivered_via, attempts, reason,"
    " accepted_at_ms, updated_at_ms, seq"
)
_ATTEMPT_COLUMNS = "seq, event_id, attempt, channel, outcome, error, at_ms"


def _data_dir_at_0006(data: Path) -> Path:
    path = data / DB_FILENAME
    upgrade_schema(sqlite_url(path), "0006_sources_per_user")
    with sqlite3.connect(path) as conn:
        conn.executemany(
            'INSERT INTO records (seq, stream, "key", body, kind, created_at_ms, user_id)'
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (seq, r.stream, r.key, bytes(r.body), r.kind, r.created_at_ms, r.user_id)
                for seq, r in enumerate(LOG, start=1)
            ],
        )
        conn.executemany(
            f"INSERT INTO deliveries ({_DELIVERY_COLUMNS}) VALUES ({', '.join('?' * 11)})",
            DELIVERIES,
        )
        conn.executemany(
            f"INSERT INTO delivery_attempts ({_ATTEMPT_COLUMNS}) VALUES ({', '.join('?' * 7)})",
            ATTEMPTS,
        )
    conn.close()
    return path


def _rows(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        deliveries = conn.execute(f"SELECT {_DELIVERY_COLUMNS} FROM deliveries ORDER BY seq")
        attempts = conn.execute(
            f"SELECT delivery_seq, {_ATTEMPT_COLUMNS} FROM delivery_attempts ORDER BY seq"
        )
        return deliveries.fetchall(), attempts.fetchall()
    finally:
        conn.close()


def _indexes(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
        return {name for (name,) in rows}
    finally:
        conn.close()


async def test_every_delivery_and_attempt_survives_the_upgrade(tmp_path: Path) -> None:
    path = _data_dir_at_0006(tmp_path)
    async with await open_store(tmp_path, "os", projectors=[DeliveryProjector()]) as store:
        history = await event_history(store, "e1")
        inbox = await user_inbox(store, "u1", limit=10, before=None, state=None)
        pending = await user_inbox(store, "u1", limit=10, before=None, state="pending")
        assert await event_history(store, "info-1") is None
    deliveries, attempts = _rows(path)
    assert deliveries == DELIVERIES
    assert attempts == [(DELIVERY_SEQ[a[1]], *a) for a in ATTEMPTS]
    assert history is not None
    assert (history["state"], history["delivered_via"], history["cursor"]) == (
        "delivered",
        "WEB",
        1,
    )
    assert [(a["attempt"], a["outcome"]) for a in history["attempts"]] == [
        (1, "sent"),
        (1, "acked"),
    ]
    assert [doc["event_id"] for doc in inbox] == ["e2", "e1"]
    assert [doc["event_id"] for doc in pending] == ["e2"]
    indexes = _indexes(path)
    assert {"ix_deliveries_user_seq", "ix_delivery_attempts_delivery"} <= indexes
    assert not {"ix_deliveries_state_seq", "ix_delivery_attempts_event"} & indexes


async def test_the_upgraded_rows_are_what_a_rebuild_replays(tmp_path: Path) -> None:
    path = _data_dir_at_0006(tmp_path)
    upgrade_schema(sqlite_url(path))
    migrated = _rows(path)
    report = rebuild_projections(tmp_path, [DeliveryProjector()])
    assert (report.replayed, report.refused) == (len(LOG), 0)
    assert _rows(path) == migrated


async def test_records_appended_after_the_upgrade_reach_the_old_deliveries(tmp_path: Path) -> None:
    path = _data_dir_at_0006(tmp_path)
    async with await open_store(tmp_path, "os", projectors=[DeliveryProjector()]) as store:
        late = RecordAttempt("e2", ChannelType.WEB, 2, AttemptOutcome.ACKED, None, 20)
        settle = Settle(E2, DeliveryState.DELIVERED, ChannelType.WEB, None, 21)
        await store.append_many([attempt_record(late, None, 2), settle_record(settle, 2)])
        history = await event_history(store, "e2")
    assert history is not None
    assert (history["state"], history["attempt_count"], history["updated_at_ms"]) == (
        "delivered",
        2,
        21,
    )
    assert [a["outcome"] for a in history["attempts"]] == ["retryable", "acked"]
    assert _rows(path)[1][-1][:2] == (2, 9)  # delivery_seq of e2, the new record's seq


def test_downgrade_gives_the_0006_tables_back(tmp_path: Path) -> None:
    path = _data_dir_at_0006(tmp_path)
    url = sqlite_url(path)
    upgrade_schema(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("sqlalchemy.url", url)
    command.downgrade(cfg, "0006_sources_per_user")
    conn = sqlite3.connect(path)
    try:
        deliveries = conn.execute(f"SELECT {_DELIVERY_COLUMNS} FROM deliveries ORDER BY seq")
        attempts = conn.execute(f"SELECT {_ATTEMPT_COLUMNS} FROM delivery_attempts ORDER BY seq")
        assert (deliveries.fetchall(), attempts.fetchall()) == (DELIVERIES, ATTEMPTS)
    finally:
        conn.close()
    assert {"ix_deliveries_state_seq", "ix_delivery_attempts_event"} <= _indexes(path)
