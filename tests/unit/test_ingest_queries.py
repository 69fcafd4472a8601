"""Listings of the ingest projections: SQL building, cursors, and pages on a real store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_ingest_projector import SEED, send
from tradewire.ingest import ingest_projectors
from tradewire.ingest.queries import (
    LISTINGS,
    ListRequest,
    QueryError,
    build_query,
    decode_cursor,
    encode_cursor,
    rows_to_page,
)
from tradewire.store.sqlite import SqliteStore, open_store

ORDERS = LISTINGS["orders"]


def fill(n: int, run_id: str, at: str, symbol: str = "BTCUSDT") -> dict[str, Any]:
    """An execution ingest event."""
    return {
        "msg_id": f"{run_id}-f{n}",
        "msg_type": "ingest_event",
        "timestamp": at,
        "source": "test",
        "target": None,
        "payload": {
            "run_id": run_id,
            "event_type": "execution",
            "event_utc": at,
            "payload_json": {
                "execution_id": f"{run_id}-x{n}", "order_id": f"{run_id}-o", "symbol": symbol,
                "side": "BUY", "quantity": 1, "price": 100 + n, "exec_time": at,
            },
        },
    }  # fmt: skip


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with await open_store(tmp_path, "os", projectors=ingest_projectors()) as opened:
        yield opened


async def page(store: SqliteStore, name: str, request: ListRequest) -> tuple[list[Any], str | None]:
    listing = LISTINGS[name]
    built = build_query(listing, request)
    assert not isinstance(built, QueryError), built
    return rows_to_page(listing, request, await store.query(*built))


def test_every_statement_is_scoped_to_the_user_and_ordered_by_the_keyset() -> None:
    request = ListRequest(user_id="alice", limit=10, filters={"run_id": "r", "symbol": None})
    sql, args = build_query(ORDERS, request)  # type: ignore[misc]
    assert "WHERE user_id = ? AND run_id = ?" in sql
    assert sql.endswith("ORDER BY first_seq, order_id LIMIT ?")
    assert args == ["alice", "r", 10]


def test_filters_lists_text_and_time_range() -> None:
    request = ListRequest(
        user_id="u",
        since="2026-01-03T12:00:00Z",
        until="2026-01-03 13:00:00",
        filters={"level": "ERROR,WARNING", "text": "50%_off", "source": "a"},
    )
    sql, args = build_query(LISTINGS["logs"], request)  # type: ignore[misc]
    assert "level IN (?, ?)" in sql and "message LIKE ? ESCAPE '\\'" in sql
    assert "ts_utc >= ?" in sql and "ts_utc < ?" in sql
    assert args[1:] == [
        "a", "ERROR", "WARNING", "%50\\%\\_off%",
        "2026-01-03T12:00:00.000000Z", "2026-01-03T13:00:00.000000Z", 100,
    ]  # fmt: skip


def test_cursors_round_trip_and_are_bound_to_their_listing_and_order() -> None:
    cursor = encode_cursor(ORDERS, False, [12, "ord-1"])
    assert decode_cursor(ORDERS, False, cursor) == [12, "ord-1"]
    for listing, desc, text in (
        (LISTINGS["runs"], False, cursor),
        (ORDERS, True, cursor),
        (ORDERS, False, "not-a-cursor!"),
        (ORDERS, False, encode_cursor(LISTINGS["logs"], False, [1])[:-2]),
    ):
        rejected = decode_cursor(listing, desc, text)
        assert isinstance(rejected, QueryError) and rejected.code == "INVALID_CURSOR"


def test_a_bad_time_names_its_parameter() -> None:
    rejected = build_query(ORDERS, ListRequest(user_id="u", until="yesterday"))
    assert isinstance(rejected, QueryError)
    assert (rejected.code, rejected.field) == ("INVALID_TIME", "until")


async def test_pages_cover_every_row_once_in_both_orders(store: SqliteStore) -> None:
    stamps = [f"2026-01-03T12:00:{s:02d}Z" for s in (5, 1, 1, 3, 9, 7, 1)]  # ties on :01
    await send(store, *(fill(n, "run-a", at) for n, at in enumerate(stamps)))
    for desc in (False, True):
        seen: list[str] = []
        cursor: str | None = None
        while True:
            request = ListRequest(user_id="alice", limit=3, cursor=cursor, descending=desc)
            items, cursor = await page(store, "executions", request)
            seen += [i["execution_id"] for i in items]
            if cursor is None:
                break
        expected = ["run-a-x1", "run-a-x2", "run-a-x6", "run-a-x3", "run-a-x0", "run-a-x5"]
        expected.append("run-a-x4")
        assert seen == (expected[::-1] if desc else expected)


async def test_a_user_never_sees_another_users_rows(store: SqliteStore) -> None:
    await send(store, fill(1, "run-a", "2026-01-03T12:00:00Z"))
    await send(store, fill(1, "run-b", "2026-01-03T12:00:00Z"), user="bob")
    mine, _ = await page(store, "executions", ListRequest(user_id="alice"))
    assert [i["run_id"] for i in mine] == ["run-a"]
    runs, _ = await page(store, "runs", ListRequest(user_id="bob"))
    assert [r["run_id"] for r in runs] == ["run-b"]


async def test_every_listing_reads_the_seed(store: SqliteStore) -> None:
    await send(store, *SEED)
    expected = {
        "runs": 1, "orders": 2, "executions": 2, "bars": 1, "oco_groups": 1,
        "instances": 1, "strategies": 1, "logs": 2,
    }  # fmt: skip
    for name, count in expected.items():
        items, cursor = await page(store, name, ListRequest(user_id="alice"))
        assert len(items) == count and cursor is None, name
        assert (await page(store, name, ListRequest(user_id="bob")))[0] == [], name
    [oco], _ = await page(store, "oco_groups", ListRequest(user_id="alice"))
    assert oco["order_ids"] == ["ord-456", "ord-457", "ord-458"]
    [instance], _ = await page(store, "instances", ListRequest(user_id="alice"))
    assert instance["parameters"] == {"fast_period": 12, "slow_period": 26, "signal_period": 9}
    errors, _ = await page(
        store, "logs", ListRequest(user_id="alice", filters={"level": "ERROR", "text": "quantity"})
    )
    assert [e["name"] for e in errors] == ["order_handler"]
    assert json.dumps(errors[0]["meta"])  # decoded back to JSON values
