"""Routing over real WebSockets: targeted delivery, topic broadcast, live logs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.integration.gateway_proc import GatewayProcess, running_gateway
from tests.integration.test_ingest_endpoints import SEED, TIMEOUT, create_key, message, ws_url

INFO_LOG, MARKET = SEED[3], SEED[2]


@pytest.fixture
def ingest_gw(tmp_path: Path) -> Iterator[tuple[GatewayProcess, str]]:
    """A gateway and an API key of user ``alice``."""
    key = create_key(tmp_path / "data", "alice")
    with running_gateway(tmp_path / "data") as gw:
        yield gw, key
        assert gw.stop() == 0, "\n".join(gw.stderr_lines)


async def recv(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return frame


async def subscribe(ws: ClientConnection, *topics: str) -> None:
    await ws.send(json.dumps({"msg_id": "sub", "msg_type": "subscribe",
                              "payload": {"topics": list(topics)}}))  # fmt: skip
    reply = await recv(ws)
    assert (reply["msg_type"], reply["payload"]["acknowledged_msg_id"]) == ("ack", "sub")


async def test_a_targeted_message_reaches_the_named_client_only(
    ingest_gw: tuple[GatewayProcess, str],
) -> None:
    gw, key = ingest_gw
    async with (
        connect(ws_url(gw, key, name="log-aggregator")) as aggregator,
        connect(ws_url(gw, key, name="bystander")) as bystander,
        connect(ws_url(gw, key)) as sender,
    ):
        await subscribe(bystander, "logs")
        await sender.send(json.dumps(INFO_LOG))  # target: log-aggregator
        assert (await recv(sender))["msg_type"] == "ack"
        assert await recv(aggregator) == INFO_LOG  # forwarded unchanged
        # the bystander got nothing: its next frame answers its own message
        await bystander.send(json.dumps(message(msg_id="mine")))
        assert (await recv(bystander))["payload"]["acknowledged_msg_id"] == "mine"


async def test_null_target_messages_go_to_topic_subscribers_on_the_same_socket(
    ingest_gw: tuple[GatewayProcess, str],
) -> None:
    gw, key = ingest_gw
    async with (
        connect(ws_url(gw, key, name="chart")) as chart,
        connect(ws_url(gw, key, name="feed")) as feed,
    ):
        await subscribe(chart, "run:run-123")
        await subscribe(feed, "ingest_events")  # the sender never gets its own messages back
        await feed.send(json.dumps(MARKET))  # target: null
        assert (await recv(feed))["msg_type"] == "ack"
        assert await recv(chart) == MARKET
        # the subscriber keeps sending on the same socket: replies and routed frames interleave
        await chart.send(json.dumps(message(msg_id="from-chart")))
        assert (await recv(chart))["payload"]["acknowledged_msg_id"] == "from-chart"
        resent = json.dumps(MARKET)  # a resent message is acked again, never routed again
        await feed.send(resent)
        assert (await recv(feed))["payload"]["duplicate"] is True
        await chart.send(json.dumps(message(msg_id="again")))
        assert (await recv(chart))["payload"]["acknowledged_msg_id"] == "again"


async def test_log_records_stream_live_to_logs_subscribers(
    ingest_gw: tuple[GatewayProcess, str],
) -> None:
    gw, key = ingest_gw
    logs = [{**INFO_LOG, "msg_id": f"log-{n}", "target": None} for n in range(20)]
    async with connect(ws_url(gw, key, name="tail")) as tail:
        await subscribe(tail, "logs")
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:  # over HTTP too
            resp = await http.post(f"{gw.http}/api/ingest", json=logs[:10], headers=headers)
            assert resp.status_code == 200
        async with connect(ws_url(gw, key)) as sender:
            for log in logs[10:]:
                await sender.send(json.dumps(log))
            for _ in logs[10:]:
                assert (await recv(sender))["msg_type"] == "ack"
        streamed = [await recv(tail) for _ in logs]
        assert [m["msg_id"] for m in streamed] == [m["msg_id"] for m in logs]
        await tail.send(json.dumps({"msg_id": "u", "msg_type": "unsubscribe",
                                    "payload": {"topics": ["logs"]}}))  # fmt: skip
        assert (await recv(tail))["payload"]["acknowledged_msg_id"] == "u"
