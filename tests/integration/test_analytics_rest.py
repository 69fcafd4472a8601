"""Run analytics over the store: the real SAP fills through ``POST /api/ingest``, the
bridge's durability across a crash, and ``tradewire report``."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SAP_DATA
from tests.integration.gateway_proc import GatewayProcess, run_cli, running_gateway, start_gateway
from tests.integration.test_bridge_e2e import envelope, event, fill_msg, run_event
from tests.integration.test_ingest_endpoints import TIMEOUT, create_key, query
from tradewire.analytics import TradeBook, compute_run_metrics, fills_from_rows
from tradewire.wire import UserEvent, decode_user_event
from tradewire.wire.payloads import OrderEventPayload, decode_payload

SESSION = "StrategyExporterTemplate"
SAP_RUN = "sap-run"
SUBSET = 500  # the session's first replay (its clock restarts after 500 fills)
QUIET_BRIDGE = """
[bridge.ORDER_PLACED]
enabled = false
[bridge.POSITION_OPENED]
enabled = false
[bridge.POSITION_CLOSED]
enabled = false
[bridge.ORDER_FILLED]
priority = "NORMAL"
channels = ["ACTIVE_SESSION"]
"""


def sap_rows(name: str) -> list[dict[str, Any]]:
    path = SAP_DATA / name
    if not path.is_file():
        pytest.fail(
            f"real SAP data missing: {path} not found. It ships in shared/data/sap next to the "
            "repo (set TRADEWIRE_SHARED to point elsewhere); this test must not skip."
        )
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def post_all(
    gw: GatewayProcess, key: str, messages: list[dict[str, Any]], batch: int = 150
) -> None:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    for start in range(0, len(messages), batch):
        chunk = messages[start : start + batch]
        resp = httpx.post(f"{gw.http}/api/ingest", json=chunk, headers=headers, timeout=TIMEOUT)
        assert resp.status_code == 200, resp.text
        kinds = [r["msg_type"] for r in resp.json()]
        assert kinds == ["ack"] * len(chunk), resp.json()


def api(gw: GatewayProcess, key: str, path: str) -> dict[str, Any]:
    resp = httpx.get(
        f"{gw.http}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=TIMEOUT
    )
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


_ORDER_FIELDS = ("order_id", "symbol", "side", "order_type", "quantity", "price", "stop_price",
                 "time_in_force", "status", "submit_time", "strategy_id", "account_id")  # fmt: skip
_FILL_FIELDS = ("execution_id", "order_id", "symbol", "side", "quantity", "price", "fee",
                "exec_time", "strategy_id", "account_id")  # fmt: skip


def sap_messages(fills: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each fill preceded by its (suffixed) order events, as ingest envelopes."""
    orders: dict[str, list[dict[str, Any]]] = {}
    for row in sap_rows("orders.jsonl"):
        orders.setdefault(row["order_id"][:36], []).append(row)
    out: list[dict[str, Any]] = []
    sent: set[str] = set()
    for row in fills:
        for o in orders.get(row["order_id"], []):
            if o["order_id"] not in sent:
                sent.add(o["order_id"])
                data = {k: o[k] for k in _ORDER_FIELDS}
                out.append(envelope(event("order", data, "2025-11-19T23:01:00Z", SAP_RUN)))
        data = {k: row[k] for k in _FILL_FIELDS}
        out.append(envelope(event("execution", data, "2025-11-19T23:01:00Z", SAP_RUN)))
    return out


@pytest.fixture
def sap_gw(tmp_path: Path) -> Iterator[tuple[GatewayProcess, str]]:
    data = tmp_path / "data"
    key = create_key(data, "sap-user")
    config = tmp_path / "bridge.toml"
    config.write_text(QUIET_BRIDGE)
    with running_gateway(data, "--config", str(config)) as gw:
        yield gw, key
        assert gw.stop() == 0, "\n".join(gw.stderr_lines)
        assert not [line for line in gw.stderr_lines if "bridge" in line], gw.stderr_lines


def wait_for(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def user_events(data_dir: Path, like: str) -> list[tuple[str, bytes]]:
    sql = "SELECT key, body FROM records WHERE stream = 'user_event' AND key LIKE ? ORDER BY seq"
    return [(k, bytes(b)) for k, b in query(data_dir, sql, (like,))]


def test_real_sap_fills_replayed_through_ingest(sap_gw: tuple[GatewayProcess, str]) -> None:
    gw, key = sap_gw
    rows = [r for r in sap_rows("executions.jsonl") if r["strategy_id"] == SESSION][:SUBSET]
    assert len(rows) == SUBSET, "the SAP export changed: expected 850 fills of the session"
    post_all(gw, key, sap_messages(rows))
    # the analytics core on the same fills, in arrival order
    book = TradeBook.rebuild(fills_from_rows(rows))
    expected = compute_run_metrics(book.trades)
    trades = api(gw, key, f"/api/runs/{SAP_RUN}/trades")
    metrics = api(gw, key, f"/api/runs/{SAP_RUN}/metrics")
    assert trades["counters"]["fills"] == SUBSET
    assert len(trades["trades"]) == len(book.trades) == metrics["total_trades"]
    assert sum(Decimal(t["net_pnl"]) for t in trades["trades"]) == expected.net_pnl
    assert Decimal(metrics["net_pnl"]) == expected.net_pnl
    assert Decimal(metrics["max_drawdown"]) == expected.max_drawdown
    assert metrics["winning_trades"] == expected.winning_trades
    assert metrics["initial_balance"] is None and metrics["sharpe"] is None
    assert len(trades["open_positions"]) == len(book.open_positions())
    # quirk: executions reference the bare uuid, orders carry "-<n>": the fill event still
    # finds its order (order_type, strategy); rule from the TOML: NORMAL, ACTIVE_SESSION
    wait_for(lambda: len(user_events(gw.data_dir, "ingest:fill:%")) == SUBSET, "ORDER_FILLED")
    [(_, body)] = user_events(gw.data_dir, f"ingest:fill:{rows[0]['execution_id']}")
    wire = decode_user_event(body)
    assert isinstance(wire, UserEvent) and wire.priority.name == "NORMAL"
    payload = decode_payload(int(wire.event_type), wire.payload)
    assert isinstance(payload, OrderEventPayload) and payload.order_type == "MARKET"
    assert payload.order_id == rows[0]["order_id"]  # the bare uuid; the order is "<uuid>-0"
    assert payload.fill_price == Decimal(repr(rows[0]["price"]))
    # disabled by the TOML: no position or placement events
    assert user_events(gw.data_dir, "ingest:pos:%") == []
    assert user_events(gw.data_dir, "ingest:order:%") == []


def test_a_crash_after_the_ack_loses_no_notification_and_replay_notifies_once(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    key = create_key(data, "alice")
    fills = [
        fill_msg(n, "BUY" if n % 2 else "SELL", str(100 + n), f"2026-01-05T10:{n:02d}:00Z")
        for n in range(1, 41)
    ]
    gw = start_gateway(data)
    try:
        post_all(gw, key, fills, batch=40)
        gw.proc.kill()  # SIGKILL right after the ack: bridging may not have happened
        gw.proc.wait(timeout=30)
    finally:
        gw.close_pipes()
    with running_gateway(data) as gw:
        wait_for(lambda: len(user_events(data, "ingest:fill:%")) == 40, "the replayed fills")
        post_all(gw, key, [run_event("run_ended")])
        wait_for(lambda: len(user_events(data, "ingest:run:%")) == 1, "BACKTEST_COMPLETED")
        assert gw.stop() == 0
    # a replay from the start: every event id already stored, nothing new
    before = query(data, "SELECT count(*) FROM records WHERE stream = 'user_event'")
    conn = sqlite3.connect(data / "tradewire.db")
    with conn:
        conn.execute("UPDATE meta SET value = '0' WHERE name = 'bridge.ingest_cursor'")
    conn.close()
    with running_gateway(data) as gw:
        end = query(data, "SELECT max(seq) FROM records WHERE stream = 'ingest'")[0][0]
        cursor = "SELECT value FROM meta WHERE name = 'bridge.ingest_cursor'"
        wait_for(lambda: int(query(data, cursor)[0][0]) == end, "the replay")
        assert gw.stop() == 0
    after = query(data, "SELECT count(*) FROM records WHERE stream = 'user_event'")
    assert len(user_events(data, "ingest:fill:%")) == 40
    assert len(user_events(data, "ingest:run:%")) == 1
    assert after == before  # the user_event stream dedups by the derived event ids
    # tradewire report on the same data dir
    out = tmp_path / "report"
    done = run_cli("report", "run-bridge", "--out", str(out), data_dir=data)
    assert done.returncode == 0, done.stderr
    assert "total_trades" in done.stdout and "net_pnl" in done.stdout
    png = (out / "equity.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "max_drawdown" in page and "x1" in page
    missing = run_cli("report", "no-such-run", data_dir=data)
    assert (
        missing.returncode == 2 and "run-bridge" in missing.stderr and "/api/runs" in missing.stderr
    )


def test_bad_bridge_rules_are_refused_at_start(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[bridge.ORDER_FILLED]\npriority = "URGENT"\n')
    done = run_cli("serve", "--config", str(config), "--http-port", "0", data_dir=tmp_path / "d")
    assert done.returncode == 2
    assert "bridge.ORDER_FILLED.priority" in done.stderr and "CRITICAL" in done.stderr
