"""The bridge pump reads pages cheaply and writes its cursor lazily (SQLite in tmp, no sockets)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from msgspec.structs import replace

from tradewire.bridge import IngestBridge, parse_bridge_rules
from tradewire.delivery.model import Event
from tradewire.ingest import ingest_projectors
from tradewire.ingest.pipeline import Accepted, admit
from tradewire.ingest.run_analytics import RunAnalyticsCache
from tradewire.server.bridge_pump import CURSOR_META, BridgePump
from tradewire.store.sqlite import open_store


def _order(n: int) -> bytes:
    return json.dumps(
        {
            "msg_id": f"m-{n}",
            "msg_type": "ingest_event",
            "timestamp": "2026-01-03T12:41:00.000Z",
            "source": "bench-0",
            "target": "api-gateway",
            "payload": {
                "run_id": "bench-run-0",
                "event_type": "order",
                "event_utc": "2026-01-03T12:41:00.000Z",
                "payload_json": {
                    "order_id": f"o-{n}",
                    "symbol": "BTCUSDT",
                    "side": "BUY",
                    "order_type": "LIMIT",
                    "quantity": 0.1,
                    "price": 45000.0,
                },
            },
        }
    ).encode()


async def test_pages_cached_and_read_back_and_the_cursor_is_saved_when_idle(
    tmp_path: Path,
) -> None:
    async with await open_store(tmp_path, "os", projectors=ingest_projectors()) as store:
        events: list[Event] = []
        pump = BridgePump(
            store,
            events.append,
            IngestBridge(parse_bridge_rules({})),
            RunAnalyticsCache(store),
            page=4,
            persist_timeout_s=0.05,
            cursor_interval_s=0.05,
        )
        await pump.start()
        assert await store.get_meta(CURSOR_META) == "0"
        admitted = [admit(_order(n), "bench", 1) for n in range(10)]
        assert all(isinstance(a, Accepted) for a in admitted)
        records = [a.record for a in admitted if isinstance(a, Accepted)]
        # Half carry their decoded envelope (handed over at commit), half are plain
        # bytes (as after a restart: read back and decoded).
        records = [r if n % 2 else replace(r, body=bytes(r.body)) for n, r in enumerate(records)]
        results = await store.append_many(records)
        assert len(pump._decoded) == 5
        task = asyncio.create_task(pump.run())
        try:
            last = results[-1].record.seq

            async def caught_up() -> bool:
                return pump.cursor == last and await store.get_meta(CURSOR_META) == str(last)

            for _ in range(1000):  # the pump polls nothing itself: give it up to 10 s
                if await caught_up():
                    break
                await asyncio.sleep(0.01)
            assert await caught_up()
            placed = [e for e in events if e.event_id.startswith("ingest:order:")]
            assert len({e.event_id for e in placed}) == 10
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
