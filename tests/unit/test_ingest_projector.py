"""The ingest projector on a real SQLite store: seed messages land in their tables."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_envelope_seed import EXAMPLES
from tradewire.ingest import ingest_projectors
from tradewire.ingest.pipeline import Accepted, admit
from tradewire.store import AppendResult
from tradewire.store.sqlite import SqliteStore, open_store

SEED = [json.loads(text) for text in EXAMPLES]
ORDER, EXECUTION, MARKET, INFO_LOG, ERROR_LOG, HEARTBEAT, ERROR, ACK = SEED[:8]
INSTANCE, OCO, BATCH = SEED[8:]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with await open_store(tmp_path, "os", projectors=ingest_projectors()) as opened:
        yield opened


async def send(
    store: SqliteStore, *messages: dict[str, Any], user: str = "alice"
) -> list[AppendResult]:
    admitted = [admit(json.dumps(m).encode(), user, 1) for m in messages]
    assert all(isinstance(a, Accepted) for a in admitted), admitted
    return await store.append_many([a.record for a in admitted])  # type: ignore[union-attr]


def with_json(message: dict[str, Any], msg_id: str, **changes: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(message))
    copy["msg_id"] = msg_id
    copy["payload"]["payload_json"].update(changes)
    return copy


async def test_every_seed_message_is_stored_and_projected(store: SqliteStore) -> None:
    results = await send(store, *SEED)
    assert [r.refusal for r in results] == [None] * len(SEED)
    assert await store.count("ingest") == len(SEED)
    q = store.query
    assert await q("SELECT run_id, user_id, status FROM runs") == [("run-123", "alice", "CREATED")]
    orders = await q(
        "SELECT order_id, symbol, side, quantity, price, status FROM orders ORDER BY order_id"
    )
    assert orders == [
        ("ord-456", "BTCUSDT", "BUY", "0.1", "45000.0", "NEW"),
        ("ord-500", "ETHUSDT", "SELL", "1.0", None, "NEW"),
    ]
    fills = await q(
        "SELECT execution_id, order_id, quantity, price, commission FROM executions "
        "ORDER BY execution_id"
    )
    assert fills == [
        ("exec-501", "ord-500", "1.0", "2800.0", None),
        ("exec-789", "ord-456", "0.1", "45000.0", "0.045"),
    ]
    bars = await q("SELECT series_id, ts_utc, open, close, volume FROM bars")
    assert bars == [("series-btc-1m", "2026-01-03T12:41:00.000000Z", "45000.0", "45020.0", "1.23")]
    instance = await q(
        "SELECT instance_id, strategy_id, parameters_json, symbols_json FROM instances"
    )
    assert instance == [
        (
            "inst-789",
            "str-123",
            '{"fast_period":12,"slow_period":26,"signal_period":9}',
            '["BTCUSDT","ETHUSDT"]',
        )
    ]
    assert await q("SELECT strategy_id FROM strategies") == [("str-123",)]
    oco = await q("SELECT oco_group_id, run_id, order_ids_json FROM oco_groups")
    assert oco == [("oco-111", "run-123", '["ord-456","ord-457","ord-458"]')]
    logs = await q("SELECT level, source, run_id FROM logs ORDER BY seq")
    assert logs == [("INFO", "trade-service", "run-123"), ("ERROR", "api-gateway", None)]
    assert await q("SELECT source, status, heartbeats FROM sources") == [
        ("quantower-connector", "alive", 1)
    ]
    assert await q("SELECT code, source FROM ingest_errors") == [
        ("CONNECTION_LOST", "market-data-feed")
    ]


async def test_resent_msg_id_is_stored_once(store: SqliteStore) -> None:
    first = await send(store, ORDER)
    again = await send(store, ORDER, ORDER)
    assert not first[0].duplicate and all(r.duplicate for r in again)
    assert await store.count("ingest") == 1
    assert await store.query("SELECT count(*) FROM order_status_history") == [(1,)]


async def test_execution_conflict_is_refused_identical_is_idempotent(store: SqliteStore) -> None:
    await send(store, EXECUTION)
    same = await send(store, with_json(EXECUTION, "m-same"))
    assert same[0].refusal is None and not same[0].duplicate
    other = await send(store, with_json(EXECUTION, "m-other", price="45001.0"))
    refusal = other[0].refusal
    assert refusal is not None and refusal.code == "EXECUTION_CONFLICT"
    assert refusal.field == "payload.payload_json.execution_id"
    assert await store.get("ingest", "m-other") is None
    assert await store.query("SELECT price FROM executions") == [("45000.0",)]
    # decimal equality, not text equality: 0.10 is the same quantity as 0.1
    assert (await send(store, with_json(EXECUTION, "m-dec", quantity="0.10")))[0].refusal is None


async def test_order_status_never_moves_backwards(store: SqliteStore) -> None:
    await send(
        store,
        with_json(ORDER, "o1", status="NEW"),
        with_json(ORDER, "o2", status="PARTIALLY_FILLED"),
        with_json(ORDER, "o3", status="NEW"),
        with_json(ORDER, "o4", status="FILLED"),
        with_json(ORDER, "o5", status="CANCELED"),
    )
    assert await store.query("SELECT status FROM orders") == [("FILLED",)]
    history = await store.query("SELECT status, applied FROM order_status_history ORDER BY seq")
    assert history == [
        ("NEW", 1),
        ("PARTIALLY_FILLED", 1),
        ("NEW", 0),
        ("FILLED", 1),
        ("CANCELED", 0),
    ]


async def test_batch_is_all_or_nothing(store: SqliteStore) -> None:
    await send(store, EXECUTION)  # exec-789 at 45000
    batch = json.loads(json.dumps(BATCH))
    batch["payload"]["payload_json"]["events"].append(
        {
            "event_type": "execution",
            "execution_id": "exec-789",
            "order_id": "ord-456",
            "quantity": 9,
            "price": 1,
        }
    )
    result = (await send(store, batch))[0]
    assert result.refusal is not None and result.refusal.code == "EXECUTION_CONFLICT"
    assert result.refusal.field == "payload.payload_json.events[2].execution_id"
    assert await store.query("SELECT count(*) FROM orders") == [(0,)]
    assert await store.query("SELECT execution_id FROM executions") == [("exec-789",)]


async def test_run_lifecycle_and_ownership(store: SqliteStore) -> None:
    started = json.loads(json.dumps(INSTANCE))
    started["msg_id"] = "s1"
    started["payload"]["payload_json"] = {"event": "run_started", "strategy_id": "str-123"}
    ended = json.loads(json.dumps(started))
    ended["msg_id"] = "s2"
    ended["payload"]["event_utc"] = "2026-01-03T13:00:00Z"
    ended["payload"]["payload_json"] = {"event": "run_ended"}
    await send(store, started, ended)
    rows = await store.query("SELECT status, strategy_id, started_utc, ended_utc FROM runs")
    assert rows == [
        ("ENDED", "str-123", "2026-01-03T12:41:40.000000Z", "2026-01-03T13:00:00.000000Z")
    ]
    theirs = await send(store, ORDER, user="mallory")
    assert theirs[0].refusal is not None and theirs[0].refusal.code == "RUN_NOT_OWNED"


async def test_money_strings_are_exact(store: SqliteStore) -> None:
    await send(
        store, with_json(EXECUTION, "m-str", execution_id="e-str", quantity="0.3", price="1e-16")
    )
    assert await store.query(
        "SELECT quantity, price FROM executions WHERE execution_id = 'e-str'"
    ) == [("0.3", "1E-16")]


async def test_one_batch_of_two_users_keeps_run_ownership(store: SqliteStore) -> None:
    # One append_many: alice creates run-123, mallory's order for it in the same
    # batch is refused (the batch is redone record by record), the rest stands.
    alice = [
        admit(json.dumps(with_json(ORDER, f"a{i}", status="NEW")).encode(), "alice", 1)
        for i in range(2)
    ]
    mallory = admit(json.dumps(with_json(ORDER, "m1", status="FILLED")).encode(), "mallory", 1)
    records = [a.record for a in (alice[0], mallory, alice[1])]  # type: ignore[union-attr]
    results = await store.append_many(records)
    assert [r.refusal.code if r.refusal else None for r in results] == [
        None,
        "RUN_NOT_OWNED",
        None,
    ]
    assert await store.query("SELECT run_id, user_id FROM runs") == [("run-123", "alice")]
    history = await store.query("SELECT status FROM order_status_history ORDER BY seq")
    assert history == [("NEW",), ("NEW",)]
    assert await store.query("SELECT status FROM orders") == [("NEW",)]
