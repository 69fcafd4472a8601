"""Run analytics over a real SQLite store (no sockets): loading, initial balance, the cache."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradewire.analytics import TradeBook, compute_run_metrics, fills_from_rows
from tradewire.ingest.analytics_json import equity_document, metrics_document, trades_document
from tradewire.ingest.pipeline import Accepted, admit_body
from tradewire.ingest.run_analytics import RunAnalyticsCache, load_run_analysis, load_run_row
from tradewire.projections import all_projectors
from tradewire.store.sqlite import SqliteStore, open_store

RUN = "r1"


def msg(n: int, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "msg_id": f"m{n}", "msg_type": "ingest_event", "timestamp": "2026-01-05T10:00:00Z",
        "source": "c", "target": None,
        "payload": {"run_id": RUN, "event_type": event_type,
                    "event_utc": "2026-01-05T10:00:00Z", "payload_json": data},
    }  # fmt: skip


def fill_row(n: int, side: str, price: str) -> dict[str, Any]:
    return {"execution_id": f"x{n}", "order_id": f"o{n}", "symbol": "BTC", "side": side,
            "quantity": "1", "price": price, "commission": "0.5",
            "exec_time": "2026-01-05T10:00:00Z"}  # fmt: skip


async def put(store: SqliteStore, *messages: dict[str, Any]) -> None:
    items = admit_body(json.dumps(list(messages)).encode(), None, "alice", 0)
    records = [i.record for i in items if isinstance(i, Accepted)]
    assert len(records) == len(messages), items
    results = await store.append_many(records)
    assert all(r.refusal is None for r in results), results


async def test_batch_fills_keep_arrival_order_and_the_cache_is_incremental(tmp_path: Path) -> None:
    rows = [fill_row(1, "BUY", "100"), fill_row(2, "SELL", "90"), fill_row(3, "SELL", "95")]
    batch = {"event": "batch_ingest", "events": [{"event_type": "execution", **r} for r in rows]}
    async with await open_store(tmp_path, "fsync", projectors=all_projectors()) as store:
        # same exec_time everywhere: only arrival order (seq, then rowid in the batch) decides
        await put(store, msg(1, "system_event", batch))
        run = await load_run_row(store, RUN)
        assert run is not None and run.user_id == "alice"
        cache = RunAnalyticsCache(store)
        first = await cache.analysis(run)
        assert await cache.analysis(run) is first and cache.hits == 1
        expected = TradeBook.rebuild(fills_from_rows(rows))
        assert first.book.state().trades == expected.state().trades
        await put(store, msg(2, "execution", fill_row(4, "BUY", "80")))
        again = await cache.analysis(run)
        assert again is first and cache.rebuilds == 1  # updated in place: incremental
        fresh = await load_run_analysis(store, run)
        assert again.book.state() == fresh.book.state() and again.metrics == fresh.metrics
        all_rows = [*rows, fill_row(4, "BUY", "80")]
        assert fresh.metrics == compute_run_metrics(
            TradeBook.rebuild(fills_from_rows(all_rows)).trades
        )
        assert metrics_document(fresh)["net_pnl"] == "3"
        assert [t["net_pnl"] for t in trades_document(fresh)["trades"]] == ["-11", "14"]
        assert [p["drawdown"] for p in equity_document(fresh)["points"]] == ["0", "11", "0"]


async def test_initial_balance_from_parameters_else_an_early_account_update(tmp_path: Path) -> None:
    account = {"account_id": "a1", "balance": "10000"}
    async with await open_store(tmp_path, "fsync", projectors=all_projectors()) as store:
        await put(
            store, msg(1, "account_update", account), msg(2, "execution", fill_row(1, "BUY", "1"))
        )
        run = await load_run_row(store, RUN)
        assert run is not None
        assert (await load_run_analysis(store, run)).initial_balance == Decimal(10000)
        # a later balance is not a starting balance
        await put(store, msg(3, "account_update", {**account, "balance": "9000"}))
        assert (await load_run_analysis(store, run)).initial_balance is None
        instance = {"instance_id": "i1", "strategy_id": "s1",
                    "parameters_json": {"initial_capital": 5000}}  # fmt: skip
        await put(
            store, msg(4, "strategy_event", {"event": "instance_updated", "instance": instance})
        )
        run = await load_run_row(store, RUN)
        assert run is not None and run.instance_id == "i1"
        assert (await load_run_analysis(store, run)).initial_balance == Decimal(5000)
