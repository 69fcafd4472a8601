"""``tradewire rebuild``: replay the log into fresh projections (SQLite adapter).

The projections are a pure function of the records in ``seq`` order, so
emptying them (each projector's ``reset``) and applying every record again,
exactly as the writer does (one savepoint per record), gives the same rows.
It all happens in one ``BEGIN IMMEDIATE`` transaction: readers see the old
projections until the new ones commit, and a running gateway's writer waits
(``busy_timeout``) instead of interleaving; stop the gateway first for a
large log.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final

from tradewire.store import Projector, StoredRecord
from tradewire.store._group_commit import SELECT_COLUMNS, row_to_stored
from tradewire.store.migrations import sqlite_url, upgrade_schema
from tradewire.store.sqlite import DB_FILENAME

__all__ = ["RebuildReport", "count_records", "rebuild_projections"]

_PAGE: Final = 2000
Progress = Callable[[int], None]


class RebuildReport:
    """What a rebuild did: records replayed and refused (should be 0)."""

    def __init__(self) -> None:
        self.replayed = 0
        self.refused = 0


def _connect(data_dir: Path) -> sqlite3.Connection:
    path = Path(data_dir) / DB_FILENAME
    upgrade_schema(sqlite_url(path))
    conn = sqlite3.connect(path, timeout=60.0, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


def count_records(data_dir: Path, streams: Sequence[str]) -> int:
    """How many records of ``streams`` a rebuild replays."""
    conn = _connect(data_dir)
    try:
        marks = ", ".join("?" for _ in streams)
        sql = f"SELECT count(*) FROM records WHERE stream IN ({marks})"
        return int(conn.execute(sql, tuple(streams)).fetchone()[0])
    finally:
        conn.close()


def rebuild_projections(
    data_dir: Path, projectors: Sequence[Projector], progress: Progress | None = None
) -> RebuildReport:
    """Reset every projector and replay its streams, in one transaction."""
    by_stream: dict[str, list[Projector]] = {}
    for projector in projectors:
        for stream in projector.streams:
            by_stream.setdefault(stream, []).append(projector)
    conn = _connect(data_dir)
    report = RebuildReport()
    try:
        conn.execute("BEGIN IMMEDIATE")
        for projector in projectors:
            projector.reset(conn)
        for page in _pages(conn, sorted(by_stream)):
            for record in page:
                report.refused += not _replay(conn, record, by_stream[record.stream])
            report.replayed += len(page)
            if progress is not None:
                progress(len(page))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
    return report


def _pages(conn: sqlite3.Connection, streams: list[str]) -> Iterator[list[StoredRecord]]:
    """The records of ``streams`` in ``seq`` order, a page at a time (bounded memory)."""
    marks = ", ".join("?" for _ in streams)
    sql = f"{SELECT_COLUMNS} WHERE stream IN ({marks}) AND seq > ? ORDER BY seq LIMIT ?"
    after = 0
    while rows := conn.execute(sql, (*streams, after, _PAGE)).fetchall():
        page = [row_to_stored(row) for row in rows]
        yield page
        after = page[-1].seq


def _replay(conn: sqlite3.Connection, record: StoredRecord, projectors: list[Projector]) -> bool:
    conn.execute("SAVEPOINT record")
    for projector in projectors:
        if projector.apply(conn, record) is not None:
            conn.execute("ROLLBACK TO record")
            conn.execute("RELEASE record")
            return False
    conn.execute("RELEASE record")
    return True
