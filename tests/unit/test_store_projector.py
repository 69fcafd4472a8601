"""Projectors run inside the append's transaction and may refuse one record."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from tradewire.store import Record, Refusal, SqlExecutor, StoredRecord
from tradewire.store.sqlite import DB_FILENAME, open_store


class KeysProjector:
    """Copies each record's key into ``proj``; refuses bodies equal to b"bad"."""

    streams = frozenset({"s"})

    def apply(self, db: SqlExecutor, record: StoredRecord) -> Refusal | None:
        db.execute("INSERT INTO proj (k, seq) VALUES (?, ?)", (record.key, record.seq))
        if record.body == b"bad":
            return Refusal(code="BAD_BODY", message="body is bad", field="body")
        return None

    def reset(self, db: SqlExecutor) -> None:
        db.execute("DELETE FROM proj")


def rec(key: str, body: bytes = b"ok", stream: str = "s") -> Record:
    return Record(stream=stream, key=key, body=body, kind="k", created_at_ms=0)


async def test_refused_record_is_not_stored_and_others_are(tmp_path: Path) -> None:
    async with await open_store(tmp_path, "os") as store:
        pass  # create the schema
    with sqlite3.connect(tmp_path / DB_FILENAME) as conn:
        conn.execute("CREATE TABLE proj (k TEXT PRIMARY KEY, seq INTEGER)")
    async with await open_store(tmp_path, "os", projectors=[KeysProjector()]) as store:
        results = await asyncio.gather(
            store.append(rec("a")),
            store.append(rec("b", b"bad")),
            store.append(rec("c")),
            store.append(rec("a")),
            store.append(rec("x", stream="other")),
        )
        assert [r.refusal is None for r in results] == [True, False, True, True, True]
        assert results[1].refusal == Refusal(code="BAD_BODY", message="body is bad", field="body")
        assert results[3].duplicate
        assert await store.get("s", "b") is None
        assert await store.count("s") == 2
        rows = await store.query("SELECT k, seq FROM proj ORDER BY seq")
        stored = {r.record.key: r.record.seq for r in results if r.refusal is None}
        assert rows == [("a", stored["a"]), ("c", stored["c"])]
        # a refused key can be sent again, corrected
        again = await store.append(rec("b", b"fixed"))
        assert again.refusal is None
        assert not again.duplicate


class BatchKeysProjector(KeysProjector):
    """:class:`KeysProjector` that also projects whole batches, counting how."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.singles: list[str] = []

    def apply(self, db: SqlExecutor, record: StoredRecord) -> Refusal | None:
        self.singles.append(record.key)
        return super().apply(db, record)

    def apply_batch(self, db: SqlExecutor, records: Sequence[StoredRecord]) -> int | None:
        self.batches.append([r.key for r in records])
        for index, record in enumerate(records):
            if super().apply(db, record) is not None:
                return index
        return None


async def _proj_store(tmp_path: Path) -> None:
    async with await open_store(tmp_path, "os") as store:
        await store.count("s")
    with sqlite3.connect(tmp_path / DB_FILENAME) as conn:
        conn.execute("CREATE TABLE proj (k TEXT PRIMARY KEY, seq INTEGER)")


async def test_batch_projector_takes_a_clean_batch_in_one_call(tmp_path: Path) -> None:
    await _proj_store(tmp_path)
    projector = BatchKeysProjector()
    async with await open_store(tmp_path, "os", projectors=[projector]) as store:
        await store.append(rec("old"))
        results = await store.append_many([rec("a"), rec("old"), rec("b"), rec("a")])
        assert [r.duplicate for r in results] == [False, True, False, True]
        assert projector.batches[-1] == ["a", "b"]  # duplicates are not projected again
        assert projector.singles == []
        rows = await store.query("SELECT k, seq FROM proj ORDER BY seq")
        assert [k for k, _ in rows] == ["old", "a", "b"]
        assert [seq for _, seq in rows[1:]] == [results[0].record.seq, results[2].record.seq]


async def test_batch_refusal_redoes_the_batch_record_by_record(tmp_path: Path) -> None:
    await _proj_store(tmp_path)
    projector = BatchKeysProjector()
    async with await open_store(tmp_path, "os", projectors=[projector]) as store:
        results = await store.append_many([rec("a"), rec("b", b"bad"), rec("c")])
        assert [r.refusal is None for r in results] == [True, False, True]
        assert projector.batches == [["a", "b", "c"]]
        assert projector.singles == ["a", "b", "c"]
        assert await store.get("s", "b") is None
        rows = await store.query("SELECT k FROM proj ORDER BY seq")
        assert rows == [("a",), ("c",)]
