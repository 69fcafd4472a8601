"""Acknowledged platform-ingest messages/s through a real gateway, vs raw SQLite.

Contenders, in the same run on this machine:

* ``raw sqlite3, same rows, batch 256``: the ceiling. One thread writing
  the rows the gateway writes for each order message (its ``records`` row,
  the ``orders`` upsert and the ``order_status_history`` row, with the store's
  statements and pragmas) in transactions of 256, with multi-row statements
  (the fastest way measured), and no decoding, no network.
* ``raw sqlite3, records only, batch 256``: the same without the projection
  rows (the ceiling of earlier runs; its ratio is in the conclusions).
* ``WebSocket, C connector(s)``: a ``tradewire serve`` subprocess (fresh
  data dir, default ``fsync`` durability) and C WebSocket connectors in this
  process, each pipelining up to W unacknowledged order events and timing
  every message from send to its ack (which the gateway sends only after the
  commit holding the record and its projection).
* ``connector SDK, C connector(s)``: the same load through
  :class:`tradewire.sdk.Connector` as shipped (its defaults: up to 1,024
  unacknowledged messages, queued messages sent together as one JSON-array
  frame when they pile up), timing each message from ``send`` to its
  outcome: what a connector built on the SDK gets.
* ``HTTP, batches of 100``: 8 concurrent clients POSTing JSON arrays of 100
  envelopes to ``/api/ingest``; latency is per request.

Targets: 20,000 acked msgs/s with 8 connectors, and >= 30% of the ceiling.
Both are judged on the 8-connector rows, each named in the conclusions.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import msgspec
from websockets.asyncio.client import connect

from bench._harness import Row, Section, percentile, progress, rate
from tradewire.ingest.projections import (
    _HISTORY_HEAD,
    _HISTORY_ROW,
    _ORDER_HEAD,
    _ORDER_ROW,
    _ORDER_TAIL,
)
from tradewire.sdk.connector import DEFAULT_WINDOW, Acked, Connector
from tradewire.store import execute_values
from tradewire.store._group_commit import _INSERT_HEAD, _INSERT_ROW, _INSERT_TAIL
from tradewire.store.migrations import sqlite_url, upgrade_schema
from tradewire.store.sqlite import DB_FILENAME, MEMORY_PRAGMAS

__all__ = ["run"]

_READY = re.compile(r"^tradewire ready http=(\S+) ")
_WINDOW = 256
_CEILING = "raw sqlite3, same rows, batch 256"
_RECORDS_ONLY = "raw sqlite3, records only, batch 256"
_WS_CONTENDERS = (
    ("1 connector", 1, 1),
    ("8 connectors", 8, 1),
    ("1 connector, batched", 1, 32),
    ("8 connectors, batched", 8, 32),
)
_SDK_CONTENDERS = (1, 8)


def _sdk_label(connectors: int) -> str:
    return f"connector SDK, {connectors} connector{'s' if connectors > 1 else ''}"


def _message(n: int, connector: int) -> bytes:
    msg = {
        "msg_id": str(uuid.uuid4()),
        "msg_type": "ingest_event",
        "timestamp": "2026-01-03T12:41:00.000Z",
        "source": f"bench-{connector}",
        "target": "api-gateway",
        "payload": {
            "run_id": f"bench-run-{connector}",
            "event_type": "order",
            "event_utc": "2026-01-03T12:41:00.000Z",
            "payload_json": {
                "order_id": f"o-{connector}-{n}",
                "symbol": "BTCUSDT",
                "side": "BUY",
                "order_type": "LIMIT",
                "quantity": 0.1,
                "price": 45000.0,
            },
        },
    }
    return json.dumps(msg, separators=(",", ":")).encode()


# -- a gateway subprocess -------------------------------------------------------


def _cli(*args: str) -> str:
    cmd = [sys.executable, "-m", "tradewire", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


@contextmanager
def _gateway(data_dir: Path) -> Iterator[tuple[str, str]]:
    """``(http base URL, API key)`` of a gateway serving ``data_dir``."""
    key = _cli("keys", "create", "--user", "bench", "--data-dir", str(data_dir))
    cmd = [sys.executable, "-m", "tradewire", "serve", "--data-dir", str(data_dir)]
    cmd += ["--http-port", "0", "--zmq-sub-port", "0", "--zmq-router-port", "0"]
    env = {**os.environ, "TRADEWIRE_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        match = _READY.match(proc.stdout.readline())
        if match is None:
            raise RuntimeError("gateway did not start")
        yield match[1], key
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()


# -- WebSocket connectors ---------------------------------------------------------


class _Ack(msgspec.Struct):
    """What the client reads of a reply: its type and the message it acknowledges."""

    msg_type: str
    payload: dict[str, object]


_ACK = msgspec.json.Decoder(_Ack | list[_Ack])


async def _connector(
    url: str, messages: list[bytes], ids: list[str], latencies: list[float], per_frame: int
) -> None:
    """Send ``messages`` pipelined (``per_frame`` per frame), timing each until its ack.

    Replies are read with msgspec (only the fields checked): the client shares the
    gateway's two cores, so the less it spends per message, the less it takes from
    what is measured.
    """
    sent: dict[str, float] = {}
    room = asyncio.Semaphore(_WINDOW // per_frame)
    batched = per_frame > 1
    async with connect(
        url + ("&batch=1" if batched else ""), max_size=None, compression=None
    ) as ws:

        async def send() -> None:
            for start in range(0, len(messages), per_frame):
                await room.acquire()
                now = time.perf_counter()
                for msg_id in ids[start : start + per_frame]:
                    sent[msg_id] = now
                chunk = messages[start : start + per_frame]
                frame = b"[" + b",".join(chunk) + b"]" if batched else chunk[0]
                await ws.send(frame.decode())

        sender = asyncio.create_task(send())
        acked = 0
        while acked < len(messages):
            reply = _ACK.decode(await ws.recv(decode=False))
            for one in reply if isinstance(reply, list) else [reply]:
                assert one.msg_type == "ack", one
                msg_id = one.payload["acknowledged_msg_id"]
                assert isinstance(msg_id, str), one
                latencies.append(time.perf_counter() - sent.pop(msg_id))
                acked += 1
                if not batched or acked % per_frame == 0:
                    room.release()
        await sender


async def _ws_run(
    base: str, key: str, connectors: int, per: int, per_frame: int = 1
) -> tuple[float, list[float]]:
    url = base.replace("http://", "ws://", 1) + f"/ws/ingest?key={key}"
    batches = [[_message(n, c) for n in range(per)] for c in range(connectors)]
    ids = [[json.loads(m)["msg_id"] for m in batch] for batch in batches]
    latencies: list[float] = []
    t0 = time.perf_counter()
    await asyncio.gather(
        *(_connector(url, b, i, latencies, per_frame) for b, i in zip(batches, ids, strict=True))
    )
    return rate(connectors * per, time.perf_counter() - t0), latencies


# -- the connector SDK -------------------------------------------------------------


async def _sdk_connector(
    url: str, key: str, messages: list[str], latencies: list[float], *, source: str
) -> None:
    """Send ``messages`` through one SDK connector; time each from ``send`` to its outcome."""
    loop = asyncio.get_running_loop()

    def timed(t0: float) -> Callable[[asyncio.Future[object]], None]:
        return lambda future: latencies.append(loop.time() - t0)

    async with Connector(url, key, source=source) as connector:
        futures = []
        for message in messages:
            future = await connector.send(message)
            future.add_done_callback(timed(loop.time()))
            futures.append(future)
        await connector.flush()
    refused = [f.result() for f in futures if not isinstance(f.result(), Acked)]
    assert not refused, refused[:3]


async def _sdk_run(base: str, key: str, connectors: int, per: int) -> tuple[float, list[float]]:
    url = base.replace("http://", "ws://", 1) + "/ws/ingest"
    batches = [[_message(n, c).decode() for n in range(per)] for c in range(connectors)]
    latencies: list[float] = []
    t0 = time.perf_counter()
    await asyncio.gather(
        *(_sdk_connector(url, key, b, latencies, source=f"sdk-{c}") for c, b in enumerate(batches))
    )
    return rate(connectors * per, time.perf_counter() - t0), latencies


# -- HTTP batches ----------------------------------------------------------------


async def _http_run(base: str, key: str, clients: int, per: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    async def client(c: int, http: httpx.AsyncClient) -> None:
        for start in range(0, per, 100):
            body = b"[" + b",".join(_message(n, 100 + c) for n in range(start, start + 100)) + b"]"
            t0 = time.perf_counter()
            resp = await http.post(f"{base}/api/ingest", content=body, headers=headers)
            latencies.append(time.perf_counter() - t0)
            assert all(r["msg_type"] == "ack" for r in resp.json())

    async with httpx.AsyncClient(timeout=120) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c, http) for c in range(clients)))
        return rate(clients * per, time.perf_counter() - t0), latencies


# -- raw ceiling -----------------------------------------------------------------


def _raw(total: int, *, projected: bool) -> float:
    """Rows/s of raw sqlite3 writing what the gateway writes per order (or records only)."""
    records = [
        ("ingest", str(uuid.uuid4()), _message(n, 0), "ingest_event", 0, "bench")
        for n in range(total)
    ]
    stamp = "2026-01-03T12:41:00.000000Z"
    orders = [
        (
            *(f"o-0-{n}", "bench-run-0", "bench", "BTCUSDT", "BUY", "LIMIT", "0.1", "45000.0"),
            *(None, None, "NEW", 1, None, stamp, None, None, None, n + 1, n + 1),
        )
        for n in range(total)
    ]
    history = [(f"o-0-{n}", n + 1, 0, "NEW", 1, stamp) for n in range(total)]
    with tempfile.TemporaryDirectory(prefix="bench-ingest-raw-") as tmp:
        path = Path(tmp) / DB_FILENAME
        upgrade_schema(sqlite_url(path))
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            for pragma in MEMORY_PRAGMAS:  # the store writer's cache settings
                conn.execute(pragma)
            t0 = time.perf_counter()
            for start in range(0, total, 256):
                end = start + 256
                conn.execute("BEGIN IMMEDIATE")
                execute_values(conn, _INSERT_HEAD, _INSERT_ROW, records[start:end], _INSERT_TAIL)
                if projected:
                    execute_values(
                        conn,
                        _ORDER_HEAD,
                        _ORDER_ROW,
                        orders[start:end],
                        _ORDER_TAIL,
                        inline_nulls=True,
                    )
                    execute_values(conn, _HISTORY_HEAD, _HISTORY_ROW, history[start:end])
                conn.execute("COMMIT")
            return rate(total, time.perf_counter() - t0)
        finally:
            conn.close()


def _row(name: str, per_s: float, latencies: list[float], note: str) -> Row:
    values: dict[str, float | str] = {"acked msgs/s": per_s}
    if latencies:
        values["p50 ms"] = percentile(latencies, 50) * 1000
        values["p99 ms"] = percentile(latencies, 99) * 1000
    return Row(name, values, note)


def run(quick: bool) -> Section:
    """Measure the ceiling, WebSocket with 1 and 8 connectors, and HTTP batches."""
    per = 2_000 if quick else 10_000
    note = "records + orders + status history rows, synchronous=FULL, the store's settings"
    rows = [_row(_CEILING, _raw(8 * per, projected=True), [], note)]
    note = "records rows only (no projection), synchronous=FULL"
    rows.append(_row(_RECORDS_ONLY, _raw(8 * per, projected=False), [], note))
    with progress() as bar:
        task = bar.add_task(
            "ingest contenders", total=len(_WS_CONTENDERS) + len(_SDK_CONTENDERS) + 1
        )
        for label, connectors, per_frame in _WS_CONTENDERS:
            with (
                tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp,
                _gateway(Path(tmp)) as (base, key),
            ):
                per_s, lat = asyncio.run(_ws_run(base, key, connectors, per, per_frame))
            how = "1 message per frame" if per_frame == 1 else f"{per_frame} per frame, batch=1"
            note = f"window {_WINDOW} msgs per connector, {how}; latency send -> ack"
            rows.append(_row(f"WebSocket, {label}", per_s, lat, note))
            bar.advance(task)
        for connectors in _SDK_CONTENDERS:
            with (
                tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp,
                _gateway(Path(tmp)) as (base, key),
            ):
                per_s, lat = asyncio.run(_sdk_run(base, key, connectors, per))
            note = f"tradewire.sdk.Connector defaults (window {DEFAULT_WINDOW}); send -> outcome"
            rows.append(_row(_sdk_label(connectors), per_s, lat, note))
            bar.advance(task)
        with (
            tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp,
            _gateway(Path(tmp)) as (
                base,
                key,
            ),
        ):
            per_s, lat = asyncio.run(_http_run(base, key, 8, per))
        rows.append(_row("HTTP, batches of 100", per_s, lat, "8 clients; latency per request"))
        bar.advance(task)
    section = Section(
        title="Platform ingest: acknowledged messages/s through the gateway",
        columns=["acked msgs/s", "p50 ms", "p99 ms"],
        rows=rows,
        baseline=_CEILING,
        ratio_of="acked msgs/s",
        intro=__doc__.split("\n\n", 1)[1].split("Targets:")[0].strip() if __doc__ else "",
    )
    section.conclusions.extend(_verdict(section))
    return section


def _verdict(section: Section) -> list[str]:
    by_name = {r.name: r for r in section.rows}
    records_only = by_name[_RECORDS_ONLY].values["acked msgs/s"]
    lines = []
    for name, how in (
        (_sdk_label(8), "through the connector SDK as shipped"),
        ("WebSocket, 8 connectors", "from a bare client, one message per frame, window 256"),
    ):
        value = by_name[name].values["acked msgs/s"]
        per_s = float(value) if isinstance(value, float | int) else 0.0
        ratio = section.ratio(name) or 0.0
        bare = per_s / float(records_only) if isinstance(records_only, float | int) else 0.0
        lines += [
            f"8 connectors {how}: target 20,000 acked msgs/s "
            f"{'holds' if per_s >= 20_000 else 'does NOT hold'} ({per_s:,.0f}/s); "
            f"target >= 30% of the raw ceiling of the same rows "
            f"{'holds' if ratio >= 0.3 else 'does NOT hold'} ({ratio:.2f}x; "
            f"{bare:.2f}x of raw records-only inserts).",
        ]
    return lines
