"""REST views and the heartbeat watch against a real ``tradewire serve``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.integration.gateway_proc import GatewayProcess, run_cli, running_gateway
from tests.integration.test_ingest_endpoints import (
    EXAMPLES,
    TIMEOUT,
    create_key,
    message,
    order,
    ws_url,
)

FAST_HEARTBEATS = {
    "TRADEWIRE_HEARTBEAT_CADENCE_SECONDS": "0.2",
    "TRADEWIRE_HEARTBEAT_MISS_FACTOR": "3",
}


@pytest.fixture
def two_users(tmp_path: Path) -> Iterator[tuple[GatewayProcess, str, str]]:
    """A gateway (fast heartbeat watch) with keys of ``alice`` and ``bob``."""
    data = tmp_path / "data"
    alice, bob = create_key(data, "alice"), create_key(data, "bob")
    with running_gateway(data, env=FAST_HEARTBEATS) as gw:
        yield gw, alice, bob
        assert gw.stop() == 0, "\n".join(gw.stderr_lines)


def post(gw: GatewayProcess, key: str, *messages: dict[str, Any] | str) -> list[dict[str, Any]]:
    body = "[" + ",".join(m if isinstance(m, str) else json.dumps(m) for m in messages) + "]"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    resp = httpx.post(f"{gw.http}/api/ingest", content=body, headers=headers, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    replies: list[dict[str, Any]] = resp.json()
    assert [r["msg_type"] for r in replies] == ["ack"] * len(messages), replies
    return replies


def get(gw: GatewayProcess, key: str, path: str, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.get(f"{gw.http}{path}", params=params, headers=headers, timeout=TIMEOUT)


def test_openapi_documents_every_view(two_users: tuple[GatewayProcess, str, str]) -> None:
    gw, _, _ = two_users
    doc = httpx.get(f"{gw.http}/openapi.json", timeout=TIMEOUT).json()
    for path in (
        "/api/runs", "/api/orders", "/api/executions", "/api/bars", "/api/oco-groups",
        "/api/instances", "/api/strategies", "/api/logs", "/api/health/sources",
    ):  # fmt: skip
        ok = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        assert "$ref" in ok["schema"], path
    assert "Page_OrderOut_" in doc["components"]["schemas"]
    assert httpx.get(f"{gw.http}/docs", timeout=TIMEOUT).status_code == 200


def test_views_are_scoped_paginated_and_filtered(
    two_users: tuple[GatewayProcess, str, str],
) -> None:
    gw, alice, bob = two_users
    post(gw, alice, *EXAMPLES)
    post(gw, alice, *(order(f"a-{n}", f"ao-{n}", run_id="run-a") for n in range(5)))
    post(gw, bob, *(order(f"b-{n}", f"bo-{n}", run_id="run-b") for n in range(3)))

    runs = get(gw, alice, "/api/runs").json()
    assert [r["run_id"] for r in runs["items"]] == ["run-123", "run-a"]
    assert [r["run_id"] for r in get(gw, bob, "/api/runs").json()["items"]] == ["run-b"]

    seen, cursor = [], None
    while True:
        params = {"run_id": "run-a", "limit": 2, **({"cursor": cursor} if cursor else {})}
        body = get(gw, alice, "/api/orders", **params).json()
        seen += [o["order_id"] for o in body["items"]]
        if (cursor := body["next_cursor"]) is None:
            break
    assert seen == [f"ao-{n}" for n in range(5)]
    assert get(gw, bob, "/api/orders", run_id="run-a").json()["items"] == []

    fills = get(gw, alice, "/api/executions", symbol="BTCUSDT").json()["items"]
    assert [(f["execution_id"], f["price"]) for f in fills] == [("exec-789", "45000.0")]
    bars = get(gw, alice, "/api/bars", since="2026-01-03T12:41:00Z", until="2026-01-03T12:42:00Z")
    assert [b["close"] for b in bars.json()["items"]] == ["45020.0"]
    assert get(gw, bob, "/api/bars").json()["items"] == []
    assert len(get(gw, alice, "/api/oco-groups").json()["items"]) == 1
    assert get(gw, alice, "/api/instances").json()["items"][0]["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert get(gw, alice, "/api/strategies").json()["items"][0]["strategy_id"] == "str-123"


def test_logs_filters_and_errors(two_users: tuple[GatewayProcess, str, str]) -> None:
    gw, alice, bob = two_users
    post(gw, alice, *EXAMPLES)
    errors = get(gw, alice, "/api/logs", level="error").json()["items"]
    assert [e["source"] for e in errors] == ["api-gateway"]
    assert errors[0]["meta"]["error_code"] == "INVALID_QUANTITY"
    by_run = get(gw, alice, "/api/logs", run_id="run-123", text="reconstructed").json()["items"]
    assert [e["name"] for e in by_run] == ["trade_service"]
    newest = get(gw, alice, "/api/logs", desc="true", limit=1).json()
    assert newest["items"][0]["level"] == "ERROR" and newest["next_cursor"]
    assert get(gw, alice, "/api/logs", source="trade-service,nobody").json()["items"][0]["seq"]
    assert get(gw, bob, "/api/logs").json()["items"] == []
    bad = get(gw, alice, "/api/logs", since="last tuesday")
    assert bad.status_code == 400 and bad.json()["detail"]["code"] == "INVALID_TIME"
    bad = get(gw, alice, "/api/logs", cursor="garbage")
    assert bad.status_code == 400 and bad.json()["detail"]["field"] == "cursor"
    assert get(gw, "twk_nope", "/api/logs").status_code == 401


def test_a_session_token_reads_the_same_views(two_users: tuple[GatewayProcess, str, str]) -> None:
    gw, alice, _ = two_users
    post(gw, alice, order("t-1", "to-1", run_id="run-t"))
    done = run_cli("token", "alice", data_dir=gw.data_dir)
    token = done.stdout.strip()
    runs = get(gw, token, "/api/runs").json()["items"]
    assert [r["run_id"] for r in runs] == ["run-t"]
    assert get(gw, token + "x", "/api/runs").status_code == 401


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return reply


async def test_a_silent_source_is_reported_down_then_up(
    two_users: tuple[GatewayProcess, str, str],
) -> None:
    gw, alice, bob = two_users
    async with (
        connect(ws_url(gw, alice, name="dashboard")) as watcher,
        connect(ws_url(gw, bob, name="bob-dashboard")) as other,
        connect(ws_url(gw, alice)) as feed,
    ):
        for ws in (watcher, other):
            await ws.send(json.dumps({"msg_id": "s", "msg_type": "subscribe",
                                      "payload": {"topics": ["errors"]}}))  # fmt: skip
            assert (await recv_json(ws))["msg_type"] == "ack"
        await feed.send(json.dumps(message(msg_id="hb-1")))
        assert (await recv_json(feed))["msg_type"] == "ack"
        lost = await recv_json(watcher)  # after 3 x 0.2 s of silence
        assert lost["msg_type"] == "error" and lost["payload"]["code"] == "CONNECTION_LOST"
        assert lost["payload"]["details"]["source"] == "test-connector"
        health = get(gw, alice, "/api/health/sources").json()["sources"]
        assert [(s["source"], s["state"], s["heartbeats"]) for s in health] == [
            ("test-connector", "down", 1)
        ]
        await watcher.send(json.dumps({"msg_id": "s2", "msg_type": "subscribe",
                                       "payload": {"topics": ["health"]}}))  # fmt: skip
        assert (await recv_json(watcher))["msg_type"] == "ack"
        await feed.send(json.dumps(message(msg_id="hb-2")))
        back = await recv_json(watcher)
        assert back["msg_type"] == "heartbeat" and back["payload"]["status"] == "source_up"
        assert get(gw, bob, "/api/health/sources").json()["sources"] == []
        # bob's dashboard heard nothing of alice's source: its next frame is its own ack
        await other.send(json.dumps(message(msg_id="bob-hb")))
        assert (await recv_json(other))["payload"]["acknowledged_msg_id"] == "bob-hb"
