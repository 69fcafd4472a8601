"""The ingest bridge and run analytics against a real ``tradewire serve``.

A connector streams orders, fills and bars over ``/ws/ingest``; the run
owner's live ``/ws/session`` receives ORDER_FILLED per fill, position events,
and BACKTEST_COMPLETED whose metrics equal ``GET /api/runs/{id}/metrics``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.integration.gateway_proc import GatewayProcess, running_gateway
from tests.integration.test_ingest_endpoints import TIMEOUT, create_key, query, ws_url
from tests.integration.userevents import Session, session

RUN = "run-bridge"
T0 = "2026-01-05T10:00:00.000Z"


def envelope(
    payload: dict[str, Any], msg_id: str | None = None, kind: str = "ingest_event"
) -> dict[str, Any]:
    return {
        "msg_id": msg_id or str(uuid.uuid4()),
        "msg_type": kind,
        "timestamp": T0,
        "source": "conn-1",
        "target": None,
        "payload": payload,
    }


def event(event_type: str, data: dict[str, Any], at: str = T0, run_id: str = RUN) -> dict[str, Any]:
    return {"run_id": run_id, "event_type": event_type, "event_utc": at, "payload_json": data}


def order_msg(order_id: str, side: str, status: str = "NEW") -> dict[str, Any]:
    data = {
        "order_id": order_id,
        "symbol": "BTCUSDT",
        "side": side,
        "quantity": "1",
        "status": status,
    }
    return envelope(event("order", data))


def fill_msg(n: int, side: str, price: str, at: str, msg_id: str | None = None) -> dict[str, Any]:
    data = {
        "execution_id": f"x{n}", "order_id": f"o{n}", "symbol": "BTCUSDT", "side": side,
        "quantity": "1", "price": price, "commission": "0.5", "exec_time": at,
    }  # fmt: skip
    return envelope(event("execution", data, at), msg_id)


def bar_msg(at: str, close: str) -> dict[str, Any]:
    bar = {"ts_utc": at, "open": close, "high": close, "low": close, "close": close, "volume": "1"}
    data = {"series_id": "s1", "symbol": "BTCUSDT", "timeframe": "1m", "bar": bar}
    return envelope(event("market_data", data, at))


def run_event(name: str, **extra: Any) -> dict[str, Any]:
    return envelope(event("strategy_event", {"event": name, **extra}, "2026-01-05T12:00:00.000Z"))


@pytest.fixture
def bridge_gw(tmp_path: Path) -> Iterator[tuple[GatewayProcess, str, str]]:
    data = tmp_path / "data"
    alice, bob = create_key(data, "alice"), create_key(data, "bob")
    with running_gateway(data) as gw:
        yield gw, alice, bob
        assert gw.stop() == 0, "\n".join(gw.stderr_lines)
        assert not [line for line in gw.stderr_lines if "bridge" in line], gw.stderr_lines


async def stream(
    gw: GatewayProcess, key: str, messages: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"}
    async with connect(ws_url(gw), additional_headers=headers, open_timeout=TIMEOUT) as ws:
        for m in messages:
            await ws.send(json.dumps(m))
        replies = [json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)) for _ in messages]
    assert [r["msg_type"] for r in replies] == ["ack"] * len(messages), replies
    return replies


async def collect(live: Session, count: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        env = await live.next()
        out.append(env["payload"])
        await live.ack(env["payload"]["event_id"])
    return out


def api(gw: GatewayProcess, key: str, path: str) -> httpx.Response:
    return httpx.get(
        f"{gw.http}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=TIMEOUT
    )


async def test_fills_notify_the_owner_live_and_the_run_end_carries_the_rest_metrics(
    bridge_gw: tuple[GatewayProcess, str, str],
) -> None:
    gw, alice, bob = bridge_gw
    fills = [
        fill_msg(1, "BUY", "100", "2026-01-05T10:01:00Z"),
        fill_msg(2, "SELL", "110", "2026-01-05T10:02:00Z"),
        fill_msg(3, "SELL", "120", "2026-01-05T10:03:00Z"),
        fill_msg(4, "BUY", "125", "2026-01-05T10:04:00Z"),
    ]
    async with session(gw, "alice") as live:
        await stream(gw, alice, [order_msg("o1", "BUY"), bar_msg("2026-01-05T10:00:00Z", "99")])
        got = await collect(live, 1)
        assert got[0]["event_type"] == "ORDER_PLACED" and got[0]["payload"]["order_id"] == "o1"
        await stream(gw, alice, fills)
        # per fill: ORDER_FILLED, then the position events (open, close, open, close)
        got = await collect(live, 8)
        kinds = [e["event_type"] for e in got]
        assert kinds.count("ORDER_FILLED") == 4
        assert kinds.count("POSITION_OPENED") == 2 and kinds.count("POSITION_CLOSED") == 2
        filled = [e for e in got if e["event_type"] == "ORDER_FILLED"]
        assert [e["payload"]["fill_price"] for e in filled] == ["100", "110", "120", "125"]
        assert filled[0]["priority"] == "CRITICAL" and filled[0]["payload"]["side"] == "BUY"
        closed = [e for e in got if e["event_type"] == "POSITION_CLOSED"]
        assert [e["payload"]["realized_pnl"] for e in closed] == ["9", "-6"]
        # the same fill resent under a new msg_id: acked, stored once, notified once
        await stream(gw, alice, [fill_msg(1, "BUY", "100", "2026-01-05T10:01:00Z")])
        await stream(gw, alice, [run_event("run_ended", strategy_id="strat-a")])
        done = (await collect(live, 1))[0]
    assert done["event_type"] == "BACKTEST_COMPLETED", done
    metrics = api(gw, alice, f"/api/runs/{RUN}/metrics").json()
    payload = done["payload"]
    assert payload["total_trades"] == metrics["total_trades"] == 2
    assert payload["winning_trades"] == metrics["winning_trades"] == 1
    assert payload["losing_trades"] == metrics["losing_trades"] == 1
    assert Decimal(payload["total_pnl"]) == Decimal(metrics["net_pnl"]) == Decimal(3)
    assert Decimal(payload["max_drawdown"]) == Decimal(metrics["max_drawdown"])
    assert Decimal(payload["win_rate"]) == Decimal(repr(metrics["win_rate"]))
    assert payload["results_path"] == f"/api/runs/{RUN}/metrics"
    assert payload["strategy_id"] == "strat-a" and payload["backtest_id"] == RUN
    filled_rows = query(
        gw.data_dir,
        "SELECT count(*) FROM records WHERE stream = 'user_event' AND key LIKE 'ingest:fill:%'",
    )
    assert filled_rows == [(4,)]  # x1 resent: one event
    # REST views: trades with legs, equity with drawdown; bob cannot see alice's run
    trades = api(gw, alice, f"/api/runs/{RUN}/trades").json()
    assert [t["net_pnl"] for t in trades["trades"]] == ["9", "-6"]
    assert trades["trades"][0]["legs"][0]["open_fill_id"] == "x1"
    equity = api(gw, alice, f"/api/runs/{RUN}/equity").json()
    assert [p["equity"] for p in equity["points"]] == ["0", "9", "3"]
    assert [p["drawdown"] for p in equity["points"]] == ["0", "0", "6"]
    refused = api(gw, bob, f"/api/runs/{RUN}/metrics")
    assert refused.status_code == 404 and refused.json()["detail"]["code"] == "RUN_NOT_FOUND"
    assert api(gw, "nokey", f"/api/runs/{RUN}/metrics").status_code == 401


async def test_rejections_errors_and_open_positions(
    bridge_gw: tuple[GatewayProcess, str, str],
) -> None:
    gw, alice, _ = bridge_gw
    log = envelope(
        {"timestamp": T0, "level": "error", "name": "strat", "message": "boom",
         "meta": {"strategy_id": "strat-a"}},
        kind="log_record",
    )  # fmt: skip
    async with session(gw, "alice") as live:
        await stream(gw, alice, [order_msg("o9", "SELL", "REJECTED"), log])
        got = await collect(live, 3)
        await stream(gw, alice, [fill_msg(5, "BUY", "100", "2026-01-05T10:01:00Z")])
        got += await collect(live, 2)
    kinds = [e["event_type"] for e in got]
    assert kinds[:3] == ["ORDER_PLACED", "ORDER_REJECTED", "STRATEGY_ERROR"], kinds
    assert got[2]["payload"]["message"] == "boom" and got[2]["payload"]["strategy_id"] == "strat-a"
    assert kinds[3:] == ["ORDER_FILLED", "POSITION_OPENED"]
    trades = api(gw, alice, f"/api/runs/{RUN}/trades").json()
    assert trades["trades"] == [] and trades["open_positions"][0]["quantity"] == "1"
    metrics = api(gw, alice, f"/api/runs/{RUN}/metrics").json()
    assert metrics["open_positions"] == 1 and metrics["total_trades"] == 0


async def test_a_silent_source_becomes_event_error_for_its_owner(tmp_path: Path) -> None:
    data = tmp_path / "data"
    alice = create_key(data, "alice")
    fast = {"TRADEWIRE_HEARTBEAT_CADENCE_SECONDS": "0.2", "TRADEWIRE_HEARTBEAT_MISS_FACTOR": "3"}
    with running_gateway(data, env=fast) as gw:
        async with session(gw, "alice") as live:
            beat = envelope({"status": "alive", "timestamp": T0}, kind="heartbeat")
            await stream(gw, alice, [beat])  # then silence: down after 3 x 0.2 s
            [alert] = await collect(live, 1)
        assert gw.stop() == 0
    assert alert["event_type"] == "EVENT_ERROR" and alert["priority"] == "CRITICAL"
    assert alert["payload"]["code"] == "CONNECTION_LOST" and alert["payload"]["source"] == "conn-1"
    assert alert["event_id"].startswith("health:conn-1:down:")
