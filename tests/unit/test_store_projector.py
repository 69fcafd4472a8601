"""Projectors run inside the append's transaction and may refuse one record."""

from __future__ import annotations

import asyncio
import sqlite3
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
