"""Orders projected in a batch (deferred multi-row upserts) == one record at a time."""

from __future__ import annotations

import functools
import itertools
import json
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tradewire.ingest.pipeline import Accepted, admit
from tradewire.ingest.projector import IngestProjector
from tradewire.store import StoredRecord
from tradewire.store.migrations import sqlite_url, upgrade_schema

STATUSES = ["NEW", "PENDING_NEW", "open", "Partially Filled", "FILLED", "CANCELLED", "WEIRD", None]


def _order(n: int, order_id: str, status: str | None, price: float | None) -> bytes:
    data: dict[str, Any] = {"order_id": order_id, "symbol": "BTCUSDT", "side": "BUY"}
    data["quantity"] = 0.1 + n
    if status is not None:
        data["status"] = status
    if price is not None:
        data["price"] = price
        data["order_type"] = "LIMIT"
    message = {
        "msg_id": f"m-{n}",
        "msg_type": "ingest_event",
        "timestamp": "2026-01-03T12:41:00.000Z",
        "source": "c",
        "target": "api-gateway",
        "payload": {
            "run_id": "run-1",
            "event_type": "order",
            "event_utc": f"2026-01-03T12:41:{n % 60:02}.000Z",
            "payload_json": data,
        },
    }
    return json.dumps(message).encode()


updates = st.lists(
    st.tuples(
        st.sampled_from(["o1", "o2", "o3"]),
        st.sampled_from(STATUSES),
        st.none() | st.floats(1, 100, allow_nan=False),
    ),
    min_size=1,
    max_size=40,
)


def _records(rows: list[tuple[str, str | None, float | None]]) -> list[StoredRecord]:
    out: list[StoredRecord] = []
    for n, (order_id, status, price) in enumerate(rows):
        accepted = admit(_order(n, order_id, status, price), "alice", 1)
        assert isinstance(accepted, Accepted)
        out.append(accepted.record.stored(n + 1))
    return out


@functools.cache
def _empty_schema() -> Path:
    """A database file at the head revision, migrated once for every example."""
    path = Path(tempfile.mkdtemp(prefix="tw-orders-")) / "schema.sqlite3"
    upgrade_schema(sqlite_url(path))
    return path


def _tables(db: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
    orders = db.execute("SELECT * FROM orders ORDER BY order_id").fetchall()
    history = db.execute("SELECT * FROM order_status_history ORDER BY seq, ordinal").fetchall()
    return orders, history


@settings(max_examples=60, deadline=None)
@given(updates, st.lists(st.integers(1, 40), max_size=4))
def test_batched_order_projection_equals_one_at_a_time(
    rows: list[tuple[str, str | None, float | None]], cuts: list[int]
) -> None:
    records = _records(rows)
    projector = IngestProjector()
    with tempfile.TemporaryDirectory() as tmp:
        dbs = []
        for name in ("one", "batched"):
            path = Path(tmp) / f"{name}.sqlite3"
            shutil.copy(_empty_schema(), path)
            dbs.append(sqlite3.connect(path))
        one, batched = dbs
        for record in records:
            assert projector.apply(one, record) is None
        bounds = sorted({0, len(records), *(c for c in cuts if c < len(records))})
        for start, end in itertools.pairwise(bounds):
            assert projector.apply_batch(batched, records[start:end]) is None
        assert _tables(batched) == _tables(one)
        assert _tables(one)[1]  # every update left a history row
        for db in dbs:
            db.close()
