"""The store writer in a process of its own: what differs from the thread writer.

The common behaviour (appends, duplicates, failures, backpressure, close) is
run against both writers by ``test_store_sqlite.py``; the SIGKILL test by
``tests/integration/test_store_kill.py``. Here: the writer process dying
under the gateway, and the gateway dying under its writer process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tradewire.errors import StoreError
from tradewire.ingest import IngestProjector
from tradewire.store import Record
from tradewire.store.sqlite import DB_FILENAME, open_store


def rec(key: str, stream: str = "s") -> Record:
    return Record(stream=stream, key=key, body=key.encode(), kind="k", created_at_ms=0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (its parent has not reaped it yet).
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def _wait_dead(pid: int, within_s: float = 30.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return False


async def test_a_killed_writer_fails_its_batch_and_the_next_batch_gets_a_new_one(
    tmp_path: Path,
) -> None:
    async with await open_store(tmp_path, "os", writer="process") as store:
        assert not (await store.append(rec("before"))).duplicate
        first = store.writer_pid
        assert first is not None and first != os.getpid()
        lock = sqlite3.connect(tmp_path / DB_FILENAME, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # the writer process waits for this lock...
        stuck = asyncio.gather(*(store.append(rec(k)) for k in ("a", "b")))
        while store.queued:  # noqa: ASYNC110 - until the link has sent the batch
            await asyncio.sleep(0.005)
        os.kill(first, signal.SIGKILL)  # ...and dies holding the batch
        with pytest.raises(StoreError, match="writer process exited"):
            await stuck
        lock.execute("ROLLBACK")
        lock.close()
        results = await store.append_many([rec("a"), rec("c")])
        assert [r.duplicate for r in results] == [False, False]  # "a" was never committed
        assert store.writer_pid not in (None, first)
        assert [r.key for r in await store.read("s")] == ["before", "a", "c"]


PARENT = """
import asyncio, sys
from pathlib import Path
from tradewire.store.sqlite import open_store

async def main():
    store = await open_store(Path(sys.argv[1]), "os", writer="process")
    print(store.writer_pid, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_the_writer_process_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait()
        assert _wait_dead(child), f"writer process {child} outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.stdout.close()


async def test_projectors_run_in_the_writer_process(tmp_path: Path) -> None:
    body = (
        b'{"msg_id":"m1","msg_type":"ingest_event","timestamp":"2026-01-03T12:41:00Z",'
        b'"source":"c","target":"api-gateway","payload":{"run_id":"r1","event_type":"order",'
        b'"event_utc":"2026-01-03T12:41:00Z","payload_json":{"order_id":"o1","symbol":"BTCUSDT",'
        b'"side":"BUY","order_type":"LIMIT","quantity":0.1,"price":45000.0}}}'
    )
    record = Record(
        stream="ingest", key="m1", body=body, kind="ingest_event", created_at_ms=0, user_id="u"
    )
    async with await open_store(
        tmp_path, "os", writer="process", projectors=[IngestProjector()]
    ) as store:
        result = await store.append(record)
        assert result.refusal is None and not result.duplicate
        assert result.record is not None and result.record.body is record.body  # the caller's own
        rows = await store.query("SELECT order_id, run_id, status FROM orders")
    assert rows == [("o1", "r1", "NEW")]


async def test_batches_and_replies_larger_than_the_socket_buffers(tmp_path: Path) -> None:
    # 200 x 50 KB: a 10 MB batch out, and for the resend a 10 MB reply back (duplicates
    # carry their stored rows), both far beyond what a socket pair buffers at once.
    bodies = [bytes([i % 251]) * 50_000 for i in range(200)]
    records = [
        Record(stream="s", key=f"k{i}", body=body, kind="k", created_at_ms=i)
        for i, body in enumerate(bodies)
    ]
    async with await open_store(tmp_path, "os", writer="process") as store:
        first = await store.append_many(records)
        again = await store.append_many([rec(f"k{i}") for i in range(200)])
        stored = await store.read("s", limit=1000)
    assert [r.duplicate for r in first] == [False] * 200
    assert all(r.duplicate for r in again)
    assert [r.record.body for r in again] == bodies  # the stored bodies, not the resent ones
    assert [r.body for r in stored] == bodies
