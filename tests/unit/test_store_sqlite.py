"""The SQLite store on real database files: appends, idempotency, group commit,
failure, backpressure, close, migrations."""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradewire.errors import StoreClosedError, StoreError
from tradewire.store import AppendResult, Record, Store
from tradewire.store.migrations import (
    SCRIPT_LOCATION,
    current_revision,
    head_revision,
    sqlite_url,
    upgrade_schema,
)
from tradewire.store.sqlite import DB_FILENAME, SqliteStore, open_store


def rec(
    key: str, body: bytes = b"{}", *, stream: str = "ingest", user: str | None = "u1"
) -> Record:
    return Record(
        stream=stream, key=key, body=body, kind="ingest_event", created_at_ms=1_000, user_id=user
    )


async def until(predicate: Callable[[], bool]) -> None:
    """Yield to the loop until ``predicate`` holds (the test timeout bounds it)."""
    while not predicate():  # noqa: ASYNC110 - polls store state that has no event
        await asyncio.sleep(0.005)


@contextmanager
def write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Hold SQLite's write lock from another connection, stalling the writer."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


@pytest.fixture(params=["thread", "process"])
async def store(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[SqliteStore]:
    """A store whose writer runs on a thread, or in a process of its own."""
    async with await open_store(tmp_path, "os", writer=request.param) as s:
        yield s


# -- basics ----------------------------------------------------------------


async def test_satisfies_the_store_port(store: SqliteStore) -> None:
    assert isinstance(store, Store)
    assert store.path == store.path.parent / DB_FILENAME


async def test_append_get_read_count(store: SqliteStore) -> None:
    first = await store.append(rec("a", b"A", user="u1"))
    second = await store.append(rec("b", b"B", user="u2"))
    other = await store.append(rec("a", b"X", stream="user_event"))
    assert not first.duplicate and not second.duplicate and not other.duplicate
    assert first.record.seq < second.record.seq < other.record.seq
    assert first.record.to_record() == rec("a", b"A", user="u1")
    assert await store.get("ingest", "a") == first.record
    assert await store.get("ingest", "missing") is None
    assert await store.read("ingest") == [first.record, second.record]
    assert await store.read("ingest", after_seq=first.record.seq) == [second.record]
    assert await store.read("ingest", limit=1) == [first.record]
    assert await store.read("ingest", user_id="u2") == [second.record]
    assert await store.count("ingest") == 2
    assert await store.count("user_event") == 1
    assert await store.count("nothing") == 0


async def test_meta_round_trip(store: SqliteStore) -> None:
    assert await store.get_meta("schema") == "tradewire"
    assert await store.get_meta("signing_key") is None
    await store.set_meta("signing_key", "k1")
    await store.set_meta("signing_key", "k2")
    assert await store.get_meta("signing_key") == "k2"


def test_rejects_unknown_durability(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="durability"):
        SqliteStore(tmp_path / DB_FILENAME, durability="sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize("durability", ["fsync", "os"])
async def test_both_durabilities_persist_across_reopen(tmp_path: Path, durability: str) -> None:
    async with await open_store(tmp_path, durability) as s:  # type: ignore[arg-type]
        await s.append_many([rec(f"k{i}") for i in range(10)])
    async with await open_store(tmp_path, durability) as s:  # type: ignore[arg-type]
        assert await s.count("ingest") == 10


# -- idempotency -------------------------------------------------------------


async def test_duplicate_returns_stored_record_and_adds_no_row(store: SqliteStore) -> None:
    original = await store.append(rec("a", b"first"))
    again = await store.append(rec("a", b"second"))
    assert again == AppendResult(original.record, duplicate=True)
    assert again.record.body == b"first"
    assert await store.count("ingest") == 1


async def test_duplicates_within_one_batch(store: SqliteStore) -> None:
    await store.append(rec("old", b"old"))
    results = await store.append_many(
        [rec("a", b"1"), rec("old", b"x"), rec("a", b"2"), rec("b", b"3"), rec("b", b"4")]
    )
    assert [r.duplicate for r in results] == [False, True, True, False, True]
    assert results[0].record == results[2].record and results[2].record.body == b"1"
    assert results[1].record.body == b"old"
    assert results[3].record == results[4].record and results[4].record.body == b"3"
    assert await store.count("ingest") == 3


async def test_concurrent_duplicates_store_one_row(store: SqliteStore) -> None:
    results = await asyncio.gather(*(store.append(rec("same", bytes([i]))) for i in range(50)))
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.record for r in results}) == 1
    assert results[0].record.body == b"\x00"  # the first submitted wins
    assert await store.count("ingest") == 1


# -- group commit ------------------------------------------------------------


async def test_many_concurrent_appenders_all_released_with_their_seqs(
    store: SqliteStore,
) -> None:
    async def appender(w: int) -> list[AppendResult]:
        return [await store.append(rec(f"{w}-{i}", f"{w}-{i}".encode())) for i in range(20)]

    per_task = await asyncio.gather(*(appender(w) for w in range(200)))
    results = [r for rs in per_task for r in rs]
    assert len({r.record.seq for r in results}) == 4000
    assert not any(r.duplicate for r in results)
    for r in results[::97]:
        assert await store.get("ingest", r.record.key) == r.record
    replayed = await store.read("ingest", limit=10_000)
    assert [r.seq for r in replayed] == sorted(r.record.seq for r in results)
    assert store.in_flight == 0


async def test_failing_batch_fails_every_caller_and_commits_nothing(store: SqliteStore) -> None:
    admin = sqlite3.connect(store.path, isolation_level=None)
    admin.execute(
        "CREATE TRIGGER poison BEFORE INSERT ON records WHEN NEW.\"key\" = 'poison' "
        "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
    )
    with write_lock(store.path) as lock:
        before = asyncio.create_task(store.append(rec("before")))
        await until(lambda: store.in_flight == 1 and store.queued == 0)  # writer holds it
        batch = [asyncio.create_task(store.append(rec(k))) for k in ("a", "poison", "b")]
        await until(lambda: store.queued == 3)  # all three wait for the same next batch
        lock.execute("ROLLBACK")
    assert not (await before).duplicate
    for task in batch:
        with pytest.raises(StoreError, match="injected fault") as caught:
            await task
        assert isinstance(caught.value.__cause__, sqlite3.Error)
    assert await store.get("ingest", "a") is None
    assert await store.count("ingest") == 1
    admin.execute("DROP TRIGGER poison")
    admin.close()
    retried = await store.append_many([rec("a"), rec("poison"), rec("b")])
    assert [r.duplicate for r in retried] == [False, False, False]


async def test_backpressure_bounds_admitted_appends(tmp_path: Path) -> None:
    async with await open_store(tmp_path, "os", max_pending=4) as s:
        with write_lock(s.path) as lock:
            tasks = [asyncio.create_task(s.append(rec(f"k{i}"))) for i in range(10)]
            await until(lambda: s.blocked == 6)
            assert s.in_flight == 4
            assert not any(t.done() for t in tasks)
            lock.execute("ROLLBACK")
        results = await asyncio.gather(*tasks)
        assert len({r.record.seq for r in results}) == 10
        assert s.in_flight == 0 and s.blocked == 0


async def test_append_many_larger_than_the_window(tmp_path: Path) -> None:
    async with await open_store(tmp_path, "os", max_pending=8) as s:
        results = await s.append_many([rec(f"k{i}") for i in range(50)])
        assert [r.record.key for r in results] == [f"k{i}" for i in range(50)]
        assert await s.count("ingest") == 50


# -- close -------------------------------------------------------------------


async def test_close_drains_pending_appends(tmp_path: Path) -> None:
    s = await open_store(tmp_path, "os", max_pending=16)
    tasks = [asyncio.create_task(s.append(rec(f"k{i}"))) for i in range(200)]
    await asyncio.sleep(0)  # every task has submitted or is waiting for a slot
    await s.close()
    assert all(t.done() and not t.cancelled() for t in tasks)
    assert len({t.result().record.seq for t in tasks}) == 200
    async with await open_store(tmp_path, "os") as again:
        assert await again.count("ingest") == 200


async def test_commits_leave_checkpoints_to_the_checkpointer(tmp_path: Path) -> None:
    """The checkpointer thread copies the WAL while commits go on; nothing is lost."""
    body = b"x" * 2_000
    async with await open_store(tmp_path, "fsync") as s:
        checkpointer = s._checkpointer
        assert checkpointer is not None and checkpointer.checkpoints == 0
        for batch in range(20):  # ~40 MB of WAL
            await s.append_many([rec(f"b{batch}-{i}", body) for i in range(1_000)])
        await until(lambda: checkpointer.checkpoints >= 1)
        assert await s.count("ingest") == 20_000
    async with await open_store(tmp_path, "fsync") as again:
        assert await again.count("ingest") == 20_000


async def test_seqs_stay_right_when_another_process_appends_in_between(tmp_path: Path) -> None:
    """The writer's remembered highest seq goes stale when the CLI appends: noticed, read back."""
    async with (
        await open_store(tmp_path, "os") as gateway,
        await open_store(tmp_path, "os") as cli,
    ):
        results: list[AppendResult] = []
        for round_ in range(5):
            results += await gateway.append_many([rec(f"g{round_}-{i}") for i in range(3)])
            results += await cli.append_many([rec(f"c{round_}-{i}") for i in range(round_)])
            results += [await gateway.append(rec(f"g{round_}-0"))]  # a duplicate
        stored = {r.key: r.seq for r in await gateway.read("ingest", 0, limit=1_000)}
    assert len(stored) == 5 * 3 + sum(range(5))
    for result in results:
        assert result.record.seq == stored[result.record.key]
    assert [r.duplicate for r in results].count(True) == 5


async def test_closed_store_refuses_work(tmp_path: Path) -> None:
    s = await open_store(tmp_path, "os")
    await s.close()
    await s.close()  # idempotent
    with pytest.raises(StoreClosedError):
        await s.append(rec("a"))
    with pytest.raises(StoreClosedError):
        await s.append_many([rec("a")])
    with pytest.raises(StoreClosedError):
        await s.get("ingest", "a")


async def test_unopened_store_refuses_appends(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / DB_FILENAME)
    with pytest.raises(StoreError, match="not open"):
        await s.append(rec("a"))
    await s.close()


# -- migrations --------------------------------------------------------------


def _indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    conn.close()
    return {name for (name,) in rows}


async def test_empty_dir_gets_schema_at_head(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "dir"
    async with await open_store(data, "os") as s:
        assert await s.count("ingest") == 0
    url = sqlite_url(data / DB_FILENAME)
    assert current_revision(url) == head_revision()
    indexes = _indexes(data / DB_FILENAME)
    assert {"ix_records_stream_seq", "ix_deliveries_user_seq"} <= indexes
    assert "ix_records_user_seq" not in indexes  # dropped by 0008: nothing reads it


async def test_reopen_at_head_is_a_no_op(tmp_path: Path) -> None:
    async with await open_store(tmp_path, "os") as s:
        stored = (await s.append(rec("a"))).record
    async with await open_store(tmp_path, "os") as s:
        assert await s.get("ingest", "a") == stored
    assert current_revision(sqlite_url(tmp_path / DB_FILENAME)) == head_revision()


async def test_older_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    upgrade_schema(sqlite_url(path), "0001_records")
    with sqlite3.connect(path) as conn:
        conn.execute(
            'INSERT INTO records (stream, "key", kind, user_id, created_at_ms, body) '
            "VALUES ('ingest', 'old', 'ingest_event', 'u1', 5, x'00')"
        )
    conn.close()
    assert "ix_deliveries_user_seq" not in _indexes(path)
    async with await open_store(tmp_path, "os") as s:
        old = await s.get("ingest", "old")
        assert old is not None and old.body == b"\x00"
        assert await s.read("ingest", user_id="u1") == [old]
    assert current_revision(sqlite_url(path)) == head_revision()
    assert "ix_deliveries_user_seq" in _indexes(path)


async def test_0008_drops_the_records_user_index_and_reads_by_user_still_work(
    tmp_path: Path,
) -> None:
    path = tmp_path / DB_FILENAME
    upgrade_schema(sqlite_url(path), "0007_deliveries_by_seq")
    assert "ix_records_user_seq" in _indexes(path)
    async with await open_store(tmp_path, "os") as s:
        await s.append_many([rec("a", user="u1"), rec("b", user="u2"), rec("c", user="u1")])
        assert [r.key for r in await s.read("ingest", user_id="u1")] == ["a", "c"]
    assert "ix_records_user_seq" not in _indexes(path)
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("sqlalchemy.url", sqlite_url(path))
    command.downgrade(cfg, "0007_deliveries_by_seq")
    assert "ix_records_user_seq" in _indexes(path)


async def test_migrations_leave_host_logging_alone(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level, logging.getLogger("alembic").handlers[:])
    async with await open_store(tmp_path, "os"):
        pass
    assert (list(root.handlers), root.level, logging.getLogger("alembic").handlers[:]) == before


# -- property: random interleavings -----------------------------------------

_streams = itertools.count()
_op = st.tuples(st.integers(0, 7), st.binary(max_size=4), st.booleans())


async def _run_wave(
    store: SqliteStore, stream: str, wave: list[tuple[int, bytes, bool]]
) -> list[tuple[Record, AppendResult]]:
    """Run one wave concurrently: consecutive grouped ops form one ``append_many``."""
    calls: list[list[Record]] = []
    for key, body, grouped in wave:
        record = rec(f"k{key}", body, stream=stream)
        if grouped and calls:
            calls[-1].append(record)
        else:
            calls.append([record])
    outcomes = await asyncio.gather(*(store.append_many(c) for c in calls))
    return [pair for c, rs in zip(calls, outcomes, strict=True) for pair in zip(c, rs, strict=True)]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # one store, a stream per example
)
@given(waves=st.lists(st.lists(_op, min_size=1, max_size=12), min_size=1, max_size=6))
async def test_random_interleavings_store_each_key_once(
    store: SqliteStore, waves: list[list[tuple[int, bytes, bool]]]
) -> None:
    stream = f"prop-{next(_streams)}"
    pairs = [pair for wave in waves for pair in await _run_wave(store, stream, wave)]
    first: dict[str, Record] = {}
    for record, _ in pairs:
        first.setdefault(record.key, record)
    assert await store.count(stream) == len(first)
    assert sum(not result.duplicate for _, result in pairs) == len(first)
    for record, result in pairs:
        assert result.record == await store.get(stream, record.key)
        assert result.record.to_record() == first[record.key]
    seqs = [(await store.get(stream, key)) for key in first]
    assert [s.seq for s in seqs if s] == sorted(s.seq for s in seqs if s)


async def test_sources_rows_survive_the_move_to_a_per_user_key(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    upgrade_schema(sqlite_url(path), "0005_users")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO sources (source, user_id, status, last_heartbeat_utc, last_seen_utc, "
            "heartbeats) VALUES ('feed', 'u1', 'ok', 't1', 't1', 7), "
            "('anon', NULL, 'ok', 't2', 't2', 1)"
        )
    conn.close()
    async with await open_store(tmp_path, "os"):
        pass
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT user_id, source, heartbeats FROM sources ORDER BY 2").fetchall()
        # the same name under another user is a row of its own now
        conn.execute(
            "INSERT INTO sources (user_id, source, status, last_seen_utc, heartbeats) "
            "VALUES ('u2', 'feed', 'ok', 't3', 1)"
        )
        count = conn.execute("SELECT count(*) FROM sources WHERE source = 'feed'").fetchone()
    conn.close()
    assert rows == [("", "anon", 1), ("u1", "feed", 7)]
    assert count == (2,)
