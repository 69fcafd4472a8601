"""Upserting projections on a real SQLite store: bars, account and position snapshots."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_ingest_projector import EXECUTION, MARKET, ORDER, send, with_json
from tradewire.ingest import ingest_projectors
from tradewire.ingest.pipeline import admit
from tradewire.store.sqlite import SqliteStore, open_store
from tradewire.wire import Rejection

BAR_COLUMNS = "series_id, ts_utc, open, high, low, close, volume"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with await open_store(tmp_path, "os", projectors=ingest_projectors()) as opened:
        yield opened


def bar(msg_id: str, ts: str, **values: Any) -> dict[str, Any]:
    """The seed's market_data message with its bar at ``ts`` and ``values`` changed."""
    message = with_json(MARKET, msg_id)
    message["payload"]["payload_json"]["bar"].update(ts_utc=ts, **values)
    return message


def snapshot(msg_id: str, event_type: str, event_utc: str, **fields: Any) -> dict[str, Any]:
    """An ``account_update`` / ``position_update`` of run-123 (the seed's run)."""
    message = json.loads(json.dumps(ORDER))
    message["msg_id"] = msg_id
    message["payload"].update(event_type=event_type, event_utc=event_utc, payload_json=fields)
    return message


# --- bars: one row per (series_id, ts) -------------------------------------------------


async def test_a_resent_bar_updates_its_row_instead_of_adding_one(store: SqliteStore) -> None:
    await send(store, MARKET)
    # the same bar again, finished now; its time written another (equal) way
    results = await send(store, bar("m-2", "2026-01-03T12:41:00Z", close=45100.5, volume="2.5"))
    assert results[0].refusal is None and not results[0].duplicate
    rows = await store.query(f"SELECT {BAR_COLUMNS}, last_seq FROM bars")
    assert rows == [
        (
            "series-btc-1m",
            "2026-01-03T12:41:00.000000Z",
            "45000.0",
            "45050.0",
            "44980.0",
            "45100.5",
            "2.5",
            results[0].record.seq,
        )
    ]
    assert await store.query("SELECT count(*) FROM series") == [(1,)]


async def test_bars_at_other_times_or_series_are_rows_of_their_own(store: SqliteStore) -> None:
    other_series = bar("m-3", "2026-01-03T12:41:00+00:00")
    other_series["payload"]["payload_json"]["series_id"] = "series-eth-1m"
    await send(store, MARKET, bar("m-2", "2026-01-03T12:42:00.000Z", close=1), other_series)
    rows = await store.query("SELECT series_id, ts_utc, close FROM bars ORDER BY 1, 2")
    assert rows == [
        ("series-btc-1m", "2026-01-03T12:41:00.000000Z", "45020.0"),
        ("series-btc-1m", "2026-01-03T12:42:00.000000Z", "1"),
        ("series-eth-1m", "2026-01-03T12:41:00.000000Z", "45020.0"),
    ]


async def test_a_resent_msg_id_does_not_touch_the_bar(store: SqliteStore) -> None:
    await send(store, MARKET)
    resent = bar(MARKET["msg_id"], "2026-01-03T12:41:00Z", close=1)  # same msg_id, new body
    assert (await send(store, resent))[0].duplicate
    assert await store.query("SELECT close FROM bars") == [("45020.0",)]


async def test_bars_inside_a_batch_upsert_in_order(store: SqliteStore) -> None:
    fields = MARKET["payload"]["payload_json"]
    batch = snapshot("b-1", "system_event", "2026-01-03T12:41:30Z", event="batch_ingest")
    batch["payload"]["payload_json"]["events"] = [
        {"event_type": "market_data", **fields, "bar": {**fields["bar"], "close": c}}
        for c in ("1.5", "2.5", "3.5")
    ]
    assert (await send(store, batch))[0].refusal is None
    assert await store.query("SELECT close FROM bars") == [("3.5",)]


# --- account snapshots: one row per (run_id, account_id) ---------------------------------


async def test_account_update_replaces_the_accounts_snapshot(store: SqliteStore) -> None:
    first = snapshot(
        "a-1",
        "account_update",
        "2026-01-03T12:41:00Z",
        account_id="acc-1",
        balance="10000.00",
        currency="USDT",
        equity=10010.5,
        margin="0",
        free_margin="10010.5",
        unrealized_pnl="10.5",
        realized_pnl="0",
        updated_utc="2026-01-03T12:40:59.500Z",
    )
    second = snapshot(
        "a-2", "account_update", "2026-01-03T12:42:00Z", account_id="acc-1", balance="9999.3"
    )
    other = snapshot("a-3", "account_update", "2026-01-03T12:42:00Z", account_id="acc-2", balance=5)
    results = await send(store, first)
    assert results[0].refusal is None
    rows = await store.query(
        "SELECT run_id, account_id, user_id, currency, balance, equity, margin, free_margin, "
        "unrealized_pnl, realized_pnl, updated_utc FROM accounts"
    )
    assert rows == [
        (
            "run-123",
            "acc-1",
            "alice",
            "USDT",
            "10000.00",
            "10010.5",
            "0",
            "10010.5",
            "10.5",
            "0",
            "2026-01-03T12:40:59.500000Z",
        )
    ]
    later = await send(store, second, other)
    rows = await store.query(
        "SELECT account_id, currency, balance, equity, unrealized_pnl, updated_utc, last_seq "
        "FROM accounts ORDER BY account_id"
    )
    assert rows == [
        # a snapshot replaces the money; the currency is kept when not restated;
        # without updated_utc the event's time is the snapshot's
        ("acc-1", "USDT", "9999.3", None, None, "2026-01-03T12:42:00.000000Z", later[0].record.seq),
        ("acc-2", None, "5", None, None, "2026-01-03T12:42:00.000000Z", later[1].record.seq),
    ]
    assert await store.query("SELECT run_id FROM runs") == [("run-123",)]


async def test_account_of_the_same_id_in_another_run_is_another_row(store: SqliteStore) -> None:
    in_a = snapshot("a-1", "account_update", "2026-01-03T12:41:00Z", account_id="acc", balance=1)
    in_b = json.loads(json.dumps(in_a))
    in_b["msg_id"], in_b["payload"]["run_id"], in_b["payload"]["payload_json"]["balance"] = (
        "a-2",
        "run-b",
        2,
    )
    await send(store, in_a, in_b)
    rows = await store.query("SELECT run_id, balance FROM accounts ORDER BY run_id")
    assert rows == [("run-123", "1"), ("run-b", "2")]


async def test_account_update_needs_an_id_and_a_balance(store: SqliteStore) -> None:
    no_balance = snapshot("a-1", "account_update", "2026-01-03T12:41:00Z", account_id="acc")
    refused = admit(json.dumps(no_balance).encode(), "alice", 1)
    assert isinstance(refused, Rejection) and refused.field == "payload.payload_json.balance"
    no_id = snapshot("a-2", "account_update", "2026-01-03T12:41:00Z", balance=1)
    refused = admit(json.dumps(no_id).encode(), "alice", 1)
    assert isinstance(refused, Rejection) and refused.field == "payload.payload_json.account_id"
    assert await store.query("SELECT count(*) FROM accounts") == [(0,)]


async def test_another_users_run_keeps_its_account_untouched(store: SqliteStore) -> None:
    mine = snapshot("a-1", "account_update", "2026-01-03T12:41:00Z", account_id="acc", balance=1)
    await send(store, mine)
    theirs = snapshot("a-2", "account_update", "2026-01-03T12:42:00Z", account_id="acc", balance=0)
    result = (await send(store, theirs, user="mallory"))[0]
    assert result.refusal is not None and result.refusal.code == "RUN_NOT_OWNED"
    assert await store.query("SELECT balance, user_id FROM accounts") == [("1", "alice")]
    assert await store.get("ingest", "a-2") is None


# --- position snapshots: one row per (run_id, account_id, symbol) ---------------------------


async def test_position_update_upserts_per_account_and_symbol(store: SqliteStore) -> None:
    opened = snapshot(
        "p-1",
        "position_update",
        "2026-01-03T12:41:00Z",
        symbol="BTCUSDT",
        side="LONG",
        quantity="0.1",
        avg_price="45000.0",
        unrealized_pnl="0",
        account_id="acc-1",
        position_id="pos-1",
    )
    grown = snapshot(
        "p-2",
        "position_update",
        "2026-01-03T12:42:00Z",
        symbol="BTCUSDT",
        side="LONG",
        quantity="0.30",
        avg_price=45100.25,
        account_id="acc-1",
    )
    eth = snapshot(
        "p-3",
        "position_update",
        "2026-01-03T12:42:00Z",
        symbol="ETHUSDT",
        side="SHORT",
        quantity=2,
        account_id="acc-1",
    )
    no_account = snapshot(
        "p-4", "position_update", "2026-01-03T12:43:00Z", symbol="BTCUSDT", side="FLAT", quantity=0
    )
    results = await send(store, opened, grown, eth, no_account)
    assert [r.refusal for r in results] == [None] * 4
    rows = await store.query(
        "SELECT account_id, symbol, user_id, side, quantity, avg_price, unrealized_pnl, "
        "position_id, updated_utc, last_seq FROM positions ORDER BY account_id, symbol"
    )
    assert rows == [
        # no account named: the run-wide position, account ""
        ("", "BTCUSDT", "alice", "FLAT", "0", None, None, None, "2026-01-03T12:43:00.000000Z",
         results[3].record.seq),
        # the second snapshot replaced the first; the position id is kept when not restated
        ("acc-1", "BTCUSDT", "alice", "LONG", "0.30", "45100.25", None, "pos-1",
         "2026-01-03T12:42:00.000000Z", results[1].record.seq),
        ("acc-1", "ETHUSDT", "alice", "SHORT", "2", None, None, None,
         "2026-01-03T12:42:00.000000Z", results[2].record.seq),
    ]  # fmt: skip


async def test_account_and_positions_in_one_batch_are_all_or_nothing(store: SqliteStore) -> None:
    batch = snapshot("b-1", "system_event", "2026-01-03T12:41:30Z", event="batch_ingest")
    batch["payload"]["payload_json"]["events"] = [
        {"event_type": "account_update", "account_id": "acc", "balance": "100"},
        {"event_type": "position_update", "symbol": "BTCUSDT", "side": "LONG", "quantity": "1"},
        {"event_type": "position_update", "symbol": "ETHUSDT", "side": "LONG", "quantity": "2"},
    ]
    assert (await send(store, batch))[0].refusal is None
    assert await store.query("SELECT account_id, balance FROM accounts") == [("acc", "100")]
    positions = await store.query("SELECT symbol, quantity FROM positions ORDER BY symbol")
    assert positions == [("BTCUSDT", "1"), ("ETHUSDT", "2")]
    # a batch whose last fact is refused (a fill contradicting a stored one) changes nothing
    await send(store, EXECUTION)
    batch["msg_id"] = "b-2"
    batch["payload"]["payload_json"]["events"][0]["balance"] = "0"
    batch["payload"]["payload_json"]["events"][1]["quantity"] = "0"
    fill = {**EXECUTION["payload"]["payload_json"], "price": "1"}
    batch["payload"]["payload_json"]["events"].append({"event_type": "execution", **fill})
    refused = (await send(store, batch))[0]
    assert refused.refusal is not None and refused.refusal.code == "EXECUTION_CONFLICT"
    assert refused.refusal.field == "payload.payload_json.events[3].execution_id"
    assert await store.query("SELECT balance FROM accounts") == [("100",)]
    positions = await store.query("SELECT symbol, quantity FROM positions ORDER BY symbol")
    assert positions == [("BTCUSDT", "1"), ("ETHUSDT", "2")]
