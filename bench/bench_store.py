"""Durable acknowledged appends/s of the store vs raw sqlite3 batched inserts.

Contenders, per durability setting, in the same run on fresh database files
with the same schema (built by the store's migrations) and the same row:

* ``raw sqlite3, batch B``: one thread, ``executemany`` of B rows in one
  ``BEGIN IMMEDIATE ... COMMIT``, the store's ``INSERT ... ON CONFLICT DO
  NOTHING`` and pragmas. No event loop, no callers to release: the ceiling
  for what group commit can reach with batches of B.
* ``store, C appenders``: C asyncio tasks (uvloop, as ``tradewire serve``
  runs) each appending in a loop and awaiting each acknowledgement.

Keys are random UUIDs (like the ``msg_id``/``event_id`` the store really
gets), the same list for every contender, so the unique index sees the same
random inserts. The ratio column is against ``raw sqlite3, batch 256``; the
target is that the store at 256 appenders reaches at least half of it.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from rich.progress import Progress

from bench._harness import Row, Section, progress, rate
from tradewire.store import Durability, Record
from tradewire.store._group_commit import INSERT
from tradewire.store.migrations import sqlite_url, upgrade_schema
from tradewire.store.sqlite import DB_FILENAME, MEMORY_PRAGMAS, open_store

try:
    import uvloop

    _RUN: Callable[[Awaitable[float]], float] = uvloop.run  # type: ignore[assignment]
    _LOOP = "uvloop"
except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
    _RUN = asyncio.run  # type: ignore[assignment]
    _LOOP = "asyncio"

__all__ = ["run"]

_BODY = (
    b'{"order_id":"ord-456","symbol":"BTCUSDT","side":"BUY","order_type":"LIMIT",'
    b'"quantity":"0.1","price":"45000.0","status":"FILLED","run_id":"run-123",'
    b'"account":"acc-1","strategy":"mean-reversion-7","ts":"2026-01-03T12:41:00.000Z"}'
)
_SYNCHRONOUS = {"fsync": "FULL", "os": "NORMAL"}
_REPEAT = 3
_CONCURRENCY = (1, 16, 256)
_CEILING = "raw sqlite3, batch 256"


def _keys(total: int) -> list[str]:
    """``total`` random (but reproducible) UUID4 keys."""
    rng = random.Random(20260103)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(total)]


def _row(key: str) -> tuple[str, str, bytes, str, int, str]:
    return (
        "ingest",
        key,
        _BODY,
        "ingest_event",
        1_767_444_060_000,
        f"user-{int(key[:2], 16) % 64}",
    )


def _record(key: str) -> Record:
    stream, key, body, kind, created_at_ms, user_id = _row(key)
    return Record(
        stream=stream, key=key, body=body, kind=kind, created_at_ms=created_at_ms, user_id=user_id
    )


def _sizes(quick: bool, durability: Durability) -> dict[int, int]:
    """Records per measurement, by batch size / concurrency."""
    if quick:
        return {1: 200, 16: 2_000, 256: 10_000}
    if durability == "fsync":
        return {1: 2_000, 16: 20_000, 256: 100_000}
    return {1: 10_000, 16: 50_000, 256: 150_000}


# -- raw sqlite3 ceiling -----------------------------------------------------


def _raw_once(
    directory: Path,
    durability: Durability,
    batch: int,
    keys: list[str],
    advance: Callable[[int], None],
) -> float:
    path = directory / DB_FILENAME
    upgrade_schema(sqlite_url(path))
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={_SYNCHRONOUS[durability]}")
        for pragma in MEMORY_PRAGMAS:  # the store writer's cache settings
            conn.execute(pragma)
        t0 = time.perf_counter()
        for start in range(0, len(keys), batch):
            rows = [_row(key) for key in keys[start : start + batch]]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(INSERT, rows)
            conn.execute("COMMIT")
            advance(len(rows))
        return time.perf_counter() - t0
    finally:
        conn.close()


def _raw(durability: Durability, batch: int, keys: list[str], bar: Progress) -> float:
    task = bar.add_task(f"raw {durability} batch {batch}", total=len(keys) * _REPEAT)
    best = float("inf")
    for _ in range(_REPEAT):
        with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
            elapsed = _raw_once(Path(tmp), durability, batch, keys, lambda n: bar.advance(task, n))
            best = min(best, elapsed)
    return rate(len(keys), best)


# -- the store ---------------------------------------------------------------


async def _store_once(
    directory: Path,
    durability: Durability,
    appenders: int,
    keys: list[str],
    advance: Callable[[int], None],
) -> float:
    per_task = len(keys) // appenders
    async with await open_store(directory, durability) as store:

        async def appender(mine: list[str]) -> None:
            for n, key in enumerate(mine, 1):
                await store.append(_record(key))
                if n % 64 == 0:
                    advance(64)

        t0 = time.perf_counter()
        await asyncio.gather(
            *(appender(keys[a * per_task : (a + 1) * per_task]) for a in range(appenders))
        )
        elapsed = time.perf_counter() - t0
        assert await store.count("ingest") == per_task * appenders
    return elapsed


def _store(durability: Durability, appenders: int, keys: list[str], bar: Progress) -> float:
    task = bar.add_task(f"store {durability} x{appenders}", total=len(keys) * _REPEAT)
    best = float("inf")
    for _ in range(_REPEAT):
        with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
            run_once = _store_once(
                Path(tmp), durability, appenders, keys, lambda n: bar.advance(task, n)
            )
            best = min(best, _RUN(run_once))
    return rate(len(keys) - len(keys) % appenders, best)


def _section(durability: Durability, quick: bool) -> Section:
    sizes = _sizes(quick, durability)
    keys = _keys(max(sizes.values()))
    rows: list[Row] = []
    with progress() as bar:
        for size in _CONCURRENCY:
            per_s = _raw(durability, size, keys[: sizes[size]], bar)
            rows.append(Row(f"raw sqlite3, batch {size}", {"appends/s": per_s}, "executemany"))
        for size in _CONCURRENCY:
            per_s = _store(durability, size, keys[: sizes[size]], bar)
            note = f"{size} asyncio task(s) on {_LOOP}, each awaiting its ack"
            rows.append(Row(f"store, {size} appenders", {"appends/s": per_s}, note))
    section = Section(
        title=f"Store: durable acknowledged appends (durability={durability})",
        columns=["appends/s"],
        rows=rows,
        baseline=_CEILING,
        ratio_of="appends/s",
        intro=_intro(durability, sizes),
    )
    section.conclusions.extend(_verdict(section))
    return section


def _intro(durability: Durability, sizes: dict[int, int]) -> str:
    sync = _SYNCHRONOUS[durability]
    return (
        f"WAL, `synchronous={sync}`; {sizes[256]:,} records of ~{len(_BODY) + 60} bytes with "
        f"random UUID keys at the highest concurrency, best of {_REPEAT}. Raw rows: one thread, "
        "B rows per transaction with the store's statement and cache settings (the ceiling), "
        "SQLite's automatic WAL checkpoints inside its commits as plain sqlite3 does them. "
        "Store rows: concurrent appenders, each ack returned only after the commit holding "
        "the record; the store checkpoints on a thread of its own, which is how it can pass "
        "the ceiling."
    )


def _verdict(section: Section) -> list[str]:
    ratio = section.ratio("store, 256 appenders") or 0.0
    held = "holds" if ratio >= 0.5 else "does NOT hold"
    return [f"Target (store at 256 appenders >= 0.5x raw batch 256) {held}: {ratio:.2f}x."]


def run(quick: bool) -> list[Section]:
    """Measure both durability settings; one section each."""
    return [_section("fsync", quick), _section("os", quick)]
