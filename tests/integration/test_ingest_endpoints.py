"""Platform ingest against a real ``tradewire serve``: keys, WebSocket and HTTP."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.integration.gateway_proc import GatewayProcess, run_cli, running_gateway
from tests.unit.test_envelope_seed import EXAMPLES

SEED = [json.loads(text) for text in EXAMPLES]
TIMEOUT = 60.0


def create_key(data_dir: Path, user: str) -> str:
    """``tradewire keys create --user USER``: the printed key."""
    done = run_cli("keys", "create", "--user", user, data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def query(data_dir: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the gateway's database directly (WAL: safe while it runs)."""
    conn = sqlite3.connect(data_dir / "tradewire.db")
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def message(kind: str = "heartbeat", msg_id: str | None = None, **payload: Any) -> dict[str, Any]:
    """A valid envelope (heartbeat by default)."""
    body = payload or {"status": "alive", "timestamp": "2026-01-03T12:41:25.000Z"}
    return {
        "msg_id": msg_id or str(uuid.uuid4()),
        "msg_type": kind,
        "timestamp": "2026-01-03T12:41:25.000Z",
        "source": "test-connector",
        "target": "api-gateway",
        "payload": body,
    }


def order(msg_id: str, order_id: str, run_id: str = "run-t") -> dict[str, Any]:
    """An order ingest event."""
    return {
        **message(msg_id=msg_id),
        "msg_type": "ingest_event",
        "payload": {
            "run_id": run_id,
            "event_type": "order",
            "event_utc": "2026-01-03T12:41:00.000Z",
            "payload_json": {
                "order_id": order_id, "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.1",
            },
        },
    }  # fmt: skip


@pytest.fixture
def ingest_gw(tmp_path: Path) -> Iterator[tuple[GatewayProcess, str]]:
    """A gateway and an API key of user ``alice`` on its data dir."""
    data = tmp_path / "data"
    key = create_key(data, "alice")
    with running_gateway(data) as gw:
        yield gw, key
        assert gw.stop() == 0, "\n".join(gw.stderr_lines)


async def exchange(ws: ClientConnection, frames: list[str | bytes]) -> list[dict[str, Any]]:
    """Send every frame, then read one reply per frame."""
    for frame in frames:
        await ws.send(frame)
    return [json.loads(await ws.recv()) for _ in frames]


def ws_url(gw: GatewayProcess, key: str | None = None, **params: str) -> str:
    query_params = {**({"key": key} if key else {}), **params}
    tail = "&".join(f"{k}={v}" for k, v in query_params.items())
    return f"{gw.ws}/ws/ingest" + (f"?{tail}" if tail else "")


# --- keys ---------------------------------------------------------------------


def test_keys_cli_create_list_revoke(tmp_path: Path) -> None:
    key = create_key(tmp_path, "bob")
    key_id = key.split("_")[1]
    listed = run_cli("keys", "list", data_dir=tmp_path)
    assert key_id in listed.stdout and "bob" in listed.stdout and key[21:] not in listed.stdout
    assert run_cli("keys", "revoke", key_id, data_dir=tmp_path).returncode == 0
    assert run_cli("keys", "revoke", "0" * 16, data_dir=tmp_path).returncode == 2
    rows = query(tmp_path, "SELECT user_id, revoked_at_ms IS NOT NULL, secret_sha256 FROM api_keys")
    assert rows[0][:2] == ("bob", 1) and key[21:] not in rows[0][2]


@pytest.mark.parametrize(
    ("key", "code"),
    [
        (None, "KEY_MISSING"),
        ("nope", "KEY_MALFORMED"),
        ("twk_" + "0" * 16 + "_" + "a" * 43, "KEY_UNKNOWN"),
    ],
)
async def test_bad_keys_are_refused_on_both_endpoints(
    ingest_gw: tuple[GatewayProcess, str], key: str | None, code: str
) -> None:
    gw, _ = ingest_gw
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        resp = await http.post(f"{gw.http}/api/ingest", json=message(), headers=headers)
    assert resp.status_code == 401 and resp.json()["code"] == code
    async with connect(ws_url(gw, key), open_timeout=TIMEOUT) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert closed.value.rcvd.reason.startswith(code)


def test_revoked_key_stops_working_while_serving(
    ingest_gw: tuple[GatewayProcess, str],
) -> None:
    gw, key = ingest_gw
    headers = {"Authorization": f"Bearer {key}"}
    assert (
        httpx.post(
            f"{gw.http}/api/ingest", json=message(), headers=headers, timeout=TIMEOUT
        ).status_code
        == 200
    )
    assert run_cli("keys", "revoke", key.split("_")[1], data_dir=gw.data_dir).returncode == 0
    resp = httpx.post(f"{gw.http}/api/ingest", json=message(), headers=headers, timeout=TIMEOUT)
    assert resp.status_code == 401 and resp.json()["code"] == "KEY_REVOKED"


# --- the seed, verbatim, over both endpoints ---------------------------------------


async def test_every_seed_message_over_websocket_is_acked_and_projected(
    ingest_gw: tuple[GatewayProcess, str],
) -> None:
    gw, key = ingest_gw
    async with connect(ws_url(gw), additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        replies = await exchange(ws, list(EXAMPLES))
    assert [r["msg_type"] for r in replies] == ["ack"] * len(SEED)
    assert [r["payload"]["acknowledged_msg_id"] for r in replies] == [m["msg_id"] for m in SEED]
    assert_seed_projected(gw.data_dir)


def test_every_seed_message_over_http_is_acked_and_projected(
    ingest_gw: tuple[GatewayProcess, str],
) -> None:
    gw, key = ingest_gw
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    body = "[" + ",".join(EXAMPLES) + "]"
    resp = httpx.post(f"{gw.http}/api/ingest", content=body, headers=headers, timeout=TIMEOUT)
    assert resp.status_code == 200
    replies = resp.json()
    assert [r["payload"]["acknowledged_msg_id"] for r in replies] == [m["msg_id"] for m in SEED]
    assert_seed_projected(gw.data_dir)
    # the same again, one at a time and as NDJSON: acked again, stored once
    single = httpx.post(
        f"{gw.http}/api/ingest", content=EXAMPLES[0], headers=headers, timeout=TIMEOUT
    )
    assert single.json()[0]["payload"] == {**single.json()[0]["payload"], "duplicate": True}
    ndjson = "\n".join(json.dumps(m) for m in SEED)
    nd_headers = {**headers, "Content-Type": "application/x-ndjson"}
    again = httpx.post(f"{gw.http}/api/ingest", content=ndjson, headers=nd_headers, timeout=TIMEOUT)
    assert [r["msg_type"] for r in again.json()] == ["ack"] * len(SEED)
    assert query(gw.data_dir, "SELECT count(*) FROM records WHERE stream = 'ingest'") == [
        (len(SEED),)
    ]


def assert_seed_projected(data: Path) -> None:
    assert query(data, "SELECT count(*) FROM records WHERE stream = 'ingest'") == [(len(SEED),)]
    assert query(data, "SELECT run_id, user_id FROM runs") == [("run-123", "alice")]
    assert query(data, "SELECT order_id FROM orders ORDER BY order_id") == [
        ("ord-456",),
        ("ord-500",),
    ]
    fills = query(data, "SELECT execution_id FROM executions ORDER BY execution_id")
    assert fills == [("exec-501",), ("exec-789",)]
    assert query(data, "SELECT series_id, close FROM bars") == [("series-btc-1m", "45020.0")]
    assert query(data, "SELECT instance_id FROM instances") == [("inst-789",)]
    assert query(data, "SELECT oco_group_id FROM oco_groups") == [("oco-111",)]
    assert query(data, "SELECT count(*) FROM logs") == [(2,)]
    assert query(data, "SELECT source FROM sources") == [("quantower-connector",)]
    assert query(data, "SELECT code FROM ingest_errors") == [("CONNECTION_LOST",)]
