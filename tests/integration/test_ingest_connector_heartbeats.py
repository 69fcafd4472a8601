"""The connector SDK's heartbeats, as the gateway's ``/api/health/sources`` sees them."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.integration.gateway_proc import GatewayProcess, running_gateway
from tests.integration.test_ingest_endpoints import TIMEOUT, create_key
from tradewire.sdk.connector import Connector

BEAT_S = 0.1
ENV = {"TRADEWIRE_HEARTBEAT_MISS_FACTOR": "3", "TRADEWIRE_DURABILITY": "os"}

Source = dict[str, Any]


async def sources(gw: GatewayProcess, key: str) -> list[Source]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        resp = await http.get(f"{gw.http}/api/health/sources", headers=headers)
    assert resp.status_code == 200, resp.text
    found: list[Source] = resp.json()["sources"]
    return found


async def source_when(
    gw: GatewayProcess, key: str, name: str, ready: Callable[[Source], bool]
) -> Source:
    """Poll until source ``name`` satisfies ``ready`` (bounded by TIMEOUT)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        listed = {s["source"]: s for s in await sources(gw, key)}
        if name in listed and ready(listed[name]):
            return listed[name]
        assert time.monotonic() < deadline, listed
        await asyncio.sleep(0.05)


def age_s(stamp: str) -> float:
    """Seconds since an ISO-8601 UTC time."""
    when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (dt.datetime.now(dt.UTC) - when).total_seconds()


async def test_a_connectors_heartbeats_keep_its_source_up_then_down_after_it_stops(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    key = create_key(data, "alice")
    with running_gateway(data, env=ENV) as gw:
        url = f"{gw.ws}/ws/ingest"
        async with Connector(url, key, source="feed-hb", heartbeat_s=BEAT_S):
            first = await source_when(gw, key, "feed-hb", lambda s: s["heartbeats"] >= 3)
            later = await source_when(
                gw, key, "feed-hb", lambda s: s["heartbeats"] >= first["heartbeats"] + 3
            )
        for seen in (first, later):
            assert (seen["state"], seen["status"]) == ("up", "alive")
            assert abs(age_s(seen["last_heartbeat_utc"])) < 60  # recent, from this run
        assert later["last_heartbeat_utc"] > first["last_heartbeat_utc"]  # still beating
        # the cadence is the connector's, measured, not the 30 s assumed before two beats
        assert later["cadence_s"] < 5 and later["down_after_s"] == 3 * later["cadence_s"]

        # silent now: down after 3 x its cadence, its count of beats kept
        down = await source_when(gw, key, "feed-hb", lambda s: s["state"] == "down")
        assert down["heartbeats"] >= later["heartbeats"]
        assert down["silent_s"] > down["down_after_s"]
        assert gw.stop() == 0, "\n".join(gw.stderr_lines)


async def test_without_heartbeat_s_a_connector_sends_none(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = create_key(data, "alice")
    with running_gateway(data, env=ENV) as gw:
        async with Connector(f"{gw.ws}/ws/ingest", key, source="feed-quiet") as conn:
            marker = await conn.send(
                {"msg_type": "log_record", "source": "feed-quiet", "target": None,
                 "timestamp": "2026-01-03T12:00:00Z",
                 "payload": {"timestamp": "2026-01-03T12:00:00Z", "level": "INFO",
                             "name": "n", "message": "m"}}
            )  # fmt: skip
            await asyncio.wait_for(marker, TIMEOUT)
        assert await sources(gw, key) == []
        assert gw.stop() == 0, "\n".join(gw.stderr_lines)


async def test_two_users_connectors_of_the_same_name_are_reported_apart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    alice, bob = create_key(data, "alice"), create_key(data, "bob")
    with running_gateway(data, env=ENV) as gw:
        url = f"{gw.ws}/ws/ingest"
        async with Connector(url, alice, source="feed", heartbeat_s=BEAT_S):
            mine = await source_when(gw, alice, "feed", lambda s: s["heartbeats"] >= 2)
        async with Connector(url, bob, source="feed", heartbeat_s=BEAT_S):
            await source_when(gw, bob, "feed", lambda s: s["heartbeats"] >= 2)
        listed = await sources(gw, alice)
        gw.stop()
    assert [s["source"] for s in listed] == ["feed"]
    assert listed[0]["heartbeats"] >= mine["heartbeats"]  # alice's own count, not bob's too
