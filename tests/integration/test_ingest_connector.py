"""The connector SDK and ``tradewire ingest`` against a real gateway, with kills."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.integration.gateway_proc import run_cli, running_gateway, start_gateway
from tests.integration.test_ingest_endpoints import TIMEOUT, create_key, message, order, query
from tradewire.sdk.connector import Acked, Connector, Refused


async def fast_sleep(_: float) -> None:
    """Reconnect at once (the backoff values are unit-tested)."""
    await asyncio.sleep(0)


async def test_each_send_resolves_to_its_outcome(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = create_key(data, "alice")
    with running_gateway(data) as gw:
        async with Connector(f"{gw.ws}/ws/ingest", key, sleep=fast_sleep) as conn:
            good = await conn.send(order("c-1", "co-1"))
            bad = await conn.send({**message(msg_id="c-2"), "payload": {"status": 1}})
            first = await asyncio.wait_for(asyncio.gather(good, bad), TIMEOUT)
            again = await conn.send(order("c-1", "co-1"))  # a resend once acked
            outcomes = [*first, await asyncio.wait_for(again, TIMEOUT)]
        assert outcomes[0] == Acked("c-1")
        assert isinstance(outcomes[1], Refused) and outcomes[1].code == "VALIDATION_ERROR"
        assert outcomes[2] == Acked("c-1", duplicate=True)
        assert gw.stop() == 0


async def test_a_gateway_killed_mid_stream_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = create_key(data, "alice")
    total = 3000
    gw = start_gateway(data)
    port = str(urlparse(gw.http).port)
    try:
        async with Connector(f"{gw.ws}/ws/ingest", key, window=256, sleep=fast_sleep) as conn:
            futures = []
            for n in range(total):
                futures.append(await conn.send(order(f"k-{n}", f"ko-{n}")))
                if n == total // 3:
                    gw.stop(signal.SIGKILL)
                    gw = start_gateway(data, "--http-port", port)
            outcomes = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT * 2)
        assert all(isinstance(o, Acked) for o in outcomes)
        assert conn.reconnects >= 1
    finally:
        assert gw.stop() == 0
    assert query(data, "SELECT count(*) FROM records WHERE stream = 'ingest'") == [(total,)]
    assert query(data, "SELECT count(*) FROM orders") == [(total,)]


def _write_orders(path: Path, total: int) -> None:
    with path.open("w") as out:
        for n in range(total):
            out.write(json.dumps(order(f"f-{n}", f"fo-{n}")) + "\n")
        out.write("{not json\n")


def _ingest_cmd(path: Path, url: str, key: str) -> list[str]:
    return [sys.executable, "-m", "tradewire", "ingest", str(path), "--url", url, "--key", key]


def test_replay_killed_mid_stream_then_rerun_leaves_no_gap_and_no_duplicate(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    key = create_key(data, "alice")
    total = 20_000
    source = tmp_path / "orders.jsonl"
    _write_orders(source, total)
    with running_gateway(data) as gw:
        url = f"{gw.ws}/ws/ingest"
        first = subprocess.Popen(
            _ingest_cmd(source, url, key), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        stored = 0
        deadline = time.monotonic() + TIMEOUT
        while stored < total // 10 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # polling the database, not asserting a duration
            stored = query(data, "SELECT count(*) FROM records WHERE stream = 'ingest'")[0][0]
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=TIMEOUT) == -signal.SIGKILL
        before = query(data, "SELECT count(*) FROM orders")[0][0]
        assert 0 < before < total, "the replay must be killed mid-stream"

        done = subprocess.run(
            _ingest_cmd(source, url, key), capture_output=True, text=True, timeout=TIMEOUT * 3
        )
        assert done.returncode == 1, done.stderr  # the bad line is reported
        summary = done.stdout
        assert "rejected INVALID_JSON" in summary and "duplicates" in summary
        stored_rows = query(data, "SELECT count(*), count(DISTINCT key) FROM records "
                                  "WHERE stream = 'ingest'")  # fmt: skip
        assert stored_rows == [(total, total)]
        ids = {row[0] for row in query(data, "SELECT order_id FROM orders")}
        assert ids == {f"fo-{n}" for n in range(total)}
        assert gw.stop() == 0


def test_replay_summary_counts_accepted_duplicates_and_rejections(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = create_key(data, "alice")
    source = tmp_path / "mixed.jsonl"
    lines = [order("m-1", "mo-1"), order("m-1", "mo-1"), {**message(), "msg_type": "telemetry"}]
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    with running_gateway(data) as gw:
        done = run_cli("ingest", str(source), "--url", f"{gw.ws}/ws/ingest", "--key", key)
        assert done.returncode == 1
        rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
                for line in done.stdout.splitlines() if line.count("│") >= 3}  # fmt: skip
        assert rows["accepted"] == "1" and rows["duplicates (already stored)"] == "1"
        assert rows["rejected UNKNOWN_MSG_TYPE"] == "1"
        assert gw.stop() == 0


async def test_a_refused_key_ends_the_connector_with_the_reason(tmp_path: Path) -> None:
    with running_gateway(tmp_path / "data") as gw:
        async with Connector(f"{gw.ws}/ws/ingest", "twk_nope", sleep=fast_sleep) as conn:
            future = await conn.send(message())
            with pytest.raises(PermissionError, match="KEY_MALFORMED"):
                await asyncio.wait_for(future, TIMEOUT)
        assert gw.stop() == 0
