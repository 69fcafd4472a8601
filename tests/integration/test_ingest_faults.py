"""Hostile input, a killed gateway, and rebuild: nothing acknowledged is ever lost."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.integration.gateway_proc import (
    lines_until_kill,
    run_cli,
    running_gateway,
    start_gateway,
)
from tests.integration.test_ingest_endpoints import (
    EXAMPLES,
    TIMEOUT,
    create_key,
    message,
    order,
    query,
    ws_url,
)

HOSTILE: list[tuple[str | bytes, str]] = [
    ("{not json", "INVALID_JSON"),
    ('{"msg_id": "h-1"}', "INVALID_MESSAGE"),
    (json.dumps({**message(msg_id="h-2"), "msg_type": "telemetry"}), "UNKNOWN_MSG_TYPE"),
    (json.dumps({**message(msg_id="h-3"), "payload": {"status": 1}}), "VALIDATION_ERROR"),
    ("[" * 5000 + "]" * 5000, "NESTING_TOO_DEEP"),
    ('{"a": "' + "x" * (10 * 1024 * 1024) + '"}', "PAYLOAD_TOO_LARGE"),
    (b"\x00\x01binary", "BINARY_FRAME"),
]  # fmt: skip


async def test_hostile_input_gets_codes_while_a_good_stream_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = create_key(data, "alice")
    with running_gateway(data) as gw:
        good_ids = [str(uuid.uuid4()) for _ in range(2000)]

        async def good() -> list[str]:
            async with connect(ws_url(gw, key), max_size=None) as ws:
                for n, msg_id in enumerate(good_ids):
                    await ws.send(json.dumps(order(msg_id, f"g-{n}")))
                replies = [json.loads(await ws.recv()) for _ in good_ids]
            return [r["payload"]["acknowledged_msg_id"] for r in replies if r["msg_type"] == "ack"]

        async def hostile() -> list[dict[str, Any]]:
            async with connect(ws_url(gw, key), max_size=None) as ws:
                frames = [frame for frame, _ in HOSTILE] * 3
                for frame in frames:
                    await ws.send(frame)
                await ws.send(json.dumps(message(msg_id="after-the-flood")))
                return [json.loads(await ws.recv()) for _ in range(len(frames) + 1)]

        acked, replies = await asyncio.wait_for(asyncio.gather(good(), hostile()), TIMEOUT * 3)
        assert acked == good_ids  # all acked, in order
        codes = [r["payload"]["code"] for r in replies[:-1]]
        assert codes == [code for _, code in HOSTILE] * 3
        assert replies[-1]["payload"]["acknowledged_msg_id"] == "after-the-flood"
        assert replies[2]["payload"]["details"] == {"msg_id": "h-2", "field": "msg_type"}
        stored = query(data, "SELECT count(*) FROM orders WHERE order_id LIKE 'g-%'")
        assert stored == [(len(good_ids),)]
        assert gw.stop() == 0


WRITER = """
import asyncio, json, sys
import pytest
from websockets.asyncio.client import connect

async def main(url, total):
    async with connect(url, max_size=None) as ws:
        async def send():
            for n in range(total):
                msg = {"msg_id": f"k-{n}", "msg_type": "ingest_event",
                       "timestamp": "2026-01-03T12:41:00Z", "source": "killer", "target": None,
                       "payload": {"run_id": "run-k", "event_type": "order",
                                   "event_utc": "2026-01-03T12:41:00Z",
                                   "payload_json": {"order_id": f"ko-{n}", "symbol": "X",
                                                    "side": "BUY", "quantity": 1}}}
                await ws.send(json.dumps(msg))
        sender = asyncio.create_task(send())
        try:
            while True:
                reply = json.loads(await ws.recv())
                if reply["msg_type"] == "ack":
                    print(reply["payload"]["acknowledged_msg_id"], flush=True)
        finally:
            sender.cancel()

try:
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
except Exception:
    pass
"""


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_sigkill_mid_stream_loses_no_acked_message(tmp_path: Path, writer: str) -> None:
    import subprocess
    import sys

    data = tmp_path / "data"
    key = create_key(data, "alice")
    gw = start_gateway(data, "--store-writer", writer)
    try:
        with subprocess.Popen(
            [sys.executable, "-c", WRITER, ws_url(gw, key), "20000"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as child:
            ids = lines_until_kill(child, 5000, gw.proc.pid, timeout=TIMEOUT)
    finally:
        gw.stop(signal.SIGKILL)
    assert len(ids) >= 5000
    with running_gateway(data, "--store-writer", writer) as again:  # restart: the store recovers
        stored = {row[0] for row in query(data, "SELECT key FROM records WHERE stream = 'ingest'")}
        missing = [i for i in ids if i not in stored]
        assert not missing, f"{len(missing)} acked messages lost, e.g. {missing[:5]}"
        projected = {row[0] for row in query(data, "SELECT order_id FROM orders")}
        assert {f"ko-{i.removeprefix('k-')}" for i in ids} <= projected
        assert again.stop() == 0


def _dump(data: Path) -> dict[str, list[tuple[Any, ...]]]:
    from tradewire.ingest.projector import PROJECTION_TABLES

    tables = [*PROJECTION_TABLES, "api_keys"]
    return {t: sorted(query(data, f"SELECT * FROM {t}"), key=repr) for t in tables}


async def test_rebuild_gives_identical_projections(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = create_key(data, "alice")
    with running_gateway(data) as gw:
        async with connect(ws_url(gw, key)) as ws:
            frames = [*EXAMPLES, *(json.dumps(order(f"r-{n}", f"ro-{n % 7}")) for n in range(50))]
            for frame in frames:
                await ws.send(frame)
            for _ in frames:
                assert json.loads(await ws.recv())["msg_type"] == "ack"
        assert gw.stop() == 0
    before = _dump(data)
    assert before["orders"] and before["executions"] and before["bars"]
    done = run_cli("rebuild", data_dir=data)
    assert done.returncode == 0, done.stderr
    assert "rebuilt projections from" in done.stdout
    assert _dump(data) == before
