"""Acknowledged means durable: SIGKILL a writer process mid-stream, then reopen.

A child process appends records from 16 concurrent tasks and prints each
key to stdout only after its ``append`` returned. The test kills it with
SIGKILL once enough keys were acknowledged, reopens the store and checks that
every key the child printed is there, for both durability settings (a killed
process is what ``"os"`` is specified to survive) and both writers (with
``writer="process"`` the kill hits the parent; its writer process finishes
the batch it holds and exits on end of file).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.gateway_proc import lines_until_kill
from tradewire.store import Record
from tradewire.store.sqlite import open_store

WRITER = """
import asyncio, sys
from pathlib import Path
from tests.integration.gateway_proc import lines_until_kill
from tradewire.store import Record
from tradewire.store.sqlite import open_store

async def appender(store, worker):
    for i in range(1_000_000):
        key = f"w{worker}-{i}"
        record = Record(stream="ingest", key=key, body=key.encode(), kind="ingest_event",
                        created_at_ms=i, user_id=f"u{worker}")
        await store.append(record)
        sys.stdout.write(key + "\\n")
        sys.stdout.flush()

async def main(data_dir, durability, writer):
    store = await open_store(Path(data_dir), durability, writer=writer)
    await asyncio.gather(*(appender(store, w) for w in range(16)))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
"""

ACKED_BEFORE_KILL = 3000


def _kill_after_acks(data_dir: Path, durability: str, writer: str) -> list[str]:
    """Run the writer, SIGKILL it after ``ACKED_BEFORE_KILL`` acks; return every acked key."""
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(data_dir), durability, writer],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stderr is not None
        acked = lines_until_kill(child, ACKED_BEFORE_KILL, child.pid)
        assert child.returncode == -signal.SIGKILL, child.stderr.read()
    return acked


@pytest.mark.parametrize("writer", ["thread", "process"])
@pytest.mark.parametrize("durability", ["fsync", "os"])
async def test_every_acked_append_survives_sigkill(
    tmp_path: Path, durability: str, writer: str
) -> None:
    acked = _kill_after_acks(tmp_path, durability, writer)
    assert len(acked) >= ACKED_BEFORE_KILL
    async with await open_store(tmp_path, durability) as store:  # type: ignore[arg-type]
        stored = {r.key: r for r in await store.read("ingest", limit=10**7)}
        missing = [key for key in acked if key not in stored]
        assert not missing, f"{len(missing)} acknowledged keys lost, e.g. {missing[:5]}"
        assert all(stored[key].body == key.encode() for key in acked)
        # The child's retries after a restart are recognised, not stored twice.
        again = await store.append_many(
            [
                Record(stream="ingest", key=k, body=b"retry", kind="ingest_event", created_at_ms=0)
                for k in acked[:100]
            ]
        )
        assert all(r.duplicate and r.record.body == r.record.key.encode() for r in again)
        assert await store.count("ingest") == len(stored)
