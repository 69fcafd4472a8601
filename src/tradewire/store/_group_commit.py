"""The group-commit writer thread of the SQLite store.

One thread owns the write connection. It sleeps until woken, drains
*everything* pending, writes it in one transaction (one ``executemany`` of
a prepared INSERT), commits, and only then hands the outcome of every record
back to the event loop, with one ``call_soon_threadsafe`` per batch. A
second thread (:class:`Checkpointer`) copies the WAL into the database
outside the commits. See :mod:`tradewire.store.sqlite` for the whole theory
of operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from msgspec.structs import astuple

from tradewire.errors import StoreError
from tradewire.store import AppendResult, Projector, Record, StoredRecord, execute_values

__all__ = [
    "INSERT",
    "SELECT_COLUMNS",
    "BatchWriter",
    "Checkpointer",
    "GroupCommitWriter",
    "MetaWrite",
    "PendingAppend",
    "batch_error",
    "drain",
    "fail_metas",
    "resolve_metas",
    "row_to_stored",
]

PendingAppend: TypeAlias = tuple[Sequence[Record], "asyncio.Future[list[AppendResult]]"]
"""One caller's records, in order, and the future of their results (one per record)."""
MetaWrite: TypeAlias = tuple[str, str, "asyncio.Future[None]"]
Settle: TypeAlias = Callable[[list[PendingAppend], list[AppendResult] | BaseException], None]

log = logging.getLogger("tradewire.store")

# Portable SQL (SQLite >= 3.24 and PostgreSQL): no INSERT OR IGNORE, no REPLACE.
# Columns in the field order of Record, so msgspec's astuple() gives the parameters.
_INSERT_HEAD = 'INSERT INTO records (stream, "key", body, kind, created_at_ms, user_id)'
_INSERT_ROW = "(?, ?, ?, ?, ?, ?)"
_INSERT_TAIL = 'ON CONFLICT (stream, "key") DO NOTHING'
INSERT = f"{_INSERT_HEAD} VALUES {_INSERT_ROW} {_INSERT_TAIL}"
_MAX_SEQ = "SELECT max(seq) FROM records"
_INSERTED_SINCE = 'SELECT seq, stream, "key" FROM records WHERE seq > ?'
SELECT_COLUMNS = 'SELECT seq, stream, "key", body, kind, created_at_ms, user_id FROM records'
_SELECT_ONE = SELECT_COLUMNS + ' WHERE stream = ? AND "key" = ?'
_SET_META = (
    "INSERT INTO meta (name, value) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)


def row_to_stored(row: Sequence[Any]) -> StoredRecord:
    """Build a :class:`StoredRecord` from a row selected with ``SELECT_COLUMNS``."""
    seq, stream, key, body, kind, created_at_ms, user_id = row
    return StoredRecord(
        seq=seq,
        stream=stream,
        key=key,
        body=body,
        kind=kind,
        created_at_ms=created_at_ms,
        user_id=user_id,
    )


def _max_seq(conn: sqlite3.Connection) -> int:
    value = conn.execute(_MAX_SEQ).fetchone()[0]
    return int(value) if value is not None else 0


class _Signal:
    """A wake-up flag on a bare lock (C-level operations, no Python ``Condition``).

    ``set`` from one thread releases it (once: setting it again is a no-op);
    ``wait`` in the other blocks until it is set, and clears it.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def set(self) -> None:
        with contextlib.suppress(RuntimeError):  # already set
            self._lock.release()

    def wait(self, timeout: float = -1) -> bool:
        """Block until set (at most ``timeout`` seconds if given); whether it was set."""
        return self._lock.acquire(timeout=timeout)


class Checkpointer:
    """Copies the WAL back into the database on a thread and connection of its own.

    With SQLite's automatic checkpoints, the commit that crosses the WAL size
    threshold copies the pages and syncs the database file before it returns:
    a several-millisecond stall of the writer every so many commits. Here the
    writer connection runs ``wal_autocheckpoint=0`` and reports each commit
    (:meth:`committed`); this thread runs a ``PASSIVE`` checkpoint (it never
    blocks the writer or readers) once ``every_records`` records were
    committed since the last one, or ``idle_s`` after the last commit. So
    the WAL stays about as small as SQLite would keep it, and a checkpoint's
    database fsync is not more frequent than SQLite's own. Durability is
    unchanged: a commit is durable once its WAL frames are (``synchronous``).
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        every_records: int = 1000,
        idle_s: float = 1.0,
    ) -> None:
        self._connect = connect
        self.every_records = every_records
        self.idle_s = idle_s
        self._signal = _Signal()
        self._stopping = False
        self._pending = 0  # records committed since the last checkpoint (approximate)
        self.checkpoints = 0
        self._thread = threading.Thread(
            target=self._run, name="tradewire-store-checkpoint", daemon=True
        )

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def committed(self, records: int) -> None:
        """A commit of ``records`` records went into the WAL (called by the writer thread)."""
        self._pending += records
        if self._pending >= self.every_records:
            self._signal.set()

    def stop(self) -> None:
        """Stop the thread (blocking: call it off the event loop)."""
        self._stopping = True
        self._signal.set()
        self._thread.join()

    def _run(self) -> None:
        conn = self._connect()
        failed = False
        try:
            while True:
                self._signal.wait(self.idle_s)
                if self._stopping:
                    return
                if not self._pending:
                    continue
                self._pending = 0
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                    failed = False
                except sqlite3.Error as exc:  # the next commits ask again
                    if not failed:
                        log.warning("WAL checkpoint failed", extra={"error": str(exc)})
                    failed = True
        finally:
            conn.close()


class BatchWriter:
    """Writes batches of records on one write connection, one transaction each.

    The part of the writer that is the same on a thread of the gateway
    (:class:`GroupCommitWriter`) and in a process of its own
    (:mod:`tradewire.store._writer_process`): no threads, no event loop.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        projectors: Sequence[Projector] = (),
        committed: Callable[[int], None] = lambda _records: None,
    ) -> None:
        self.conn = conn
        self._committed = committed
        self._last_seq: int | None = None  # the highest seq after this writer's last commit
        self._top: int | None = None  # the same within the transaction being written
        self._projectors: dict[str, list[Projector]] = {}
        for projector in projectors:
            for stream in projector.streams:
                self._projectors.setdefault(stream, []).append(projector)

    def commit(self, records: list[Record], metas: Sequence[tuple[str, str]]) -> list[AppendResult]:
        """Write ``records`` (one result each, in order) and ``metas`` in one transaction.

        Raises what failed, after rolling back: then nothing of the batch is stored.
        """
        conn = self.conn
        self._top = self._last_seq
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = self._write_records(conn, records)
            if metas:
                conn.executemany(_SET_META, metas)
            conn.execute("COMMIT")
            self._last_seq = self._top
        except BaseException:
            _rollback(conn)
            raise
        self._committed(len(results) + len(metas))
        return results

    def _write_records(self, conn: sqlite3.Connection, records: list[Record]) -> list[AppendResult]:
        fresh, slots = _dedupe(records)
        if not fresh:
            return []
        done = self._write_batch(conn, fresh)
        if done is None:  # a projector refused a record: redo the batch, a savepoint per record
            conn.execute("ROLLBACK")  # nothing else is in the transaction yet (metas come after)
            conn.execute("BEGIN IMMEDIATE")
            self._top = None
            done = [self._write_projected(conn, record) for record in fresh]
        return [
            AppendResult(done[slot].record, done[slot].duplicate or repeated, done[slot].refusal)
            for slot, repeated in slots
        ]

    def _write_batch(
        self, conn: sqlite3.Connection, fresh: list[Record]
    ) -> list[AppendResult] | None:
        """Insert every record with one ``executemany``, then project the new ones in order.

        The optimistic path: no savepoint at all. ``None`` when a projector
        refused a record; the caller then rolls the transaction back and takes
        the per-record path, which undoes only the refused records.

        The highest ``seq`` before the insert is the one this writer saw after
        its last commit (``_last_seq``), read again only when unknown: another
        process (the CLI) may have appended since, which the check after the
        insert notices (the seqs are then not contiguous and are read back).
        """
        base = self._top if self._top is not None else _max_seq(conn)
        rows = list(map(astuple, fresh))
        inserted = execute_values(conn, _INSERT_HEAD, _INSERT_ROW, rows, _INSERT_TAIL)
        self._top = top = _max_seq(conn)
        stored = _stored_fast(fresh, base, inserted, top)
        if stored is None:
            stored = _stored_slow(conn, fresh, base)
        if not self._project_batch(conn, [r for r, duplicate in stored if not duplicate]):
            return None
        return [AppendResult(record, duplicate) for record, duplicate in stored]

    def _project_batch(self, conn: sqlite3.Connection, records: list[StoredRecord]) -> bool:
        """Run the projectors over new ``records``; ``False`` when one refused a record."""
        mine: dict[int, tuple[Projector, list[StoredRecord]]] = {}
        for record in records:
            for projector in self._projectors.get(record.stream, ()):
                mine.setdefault(id(projector), (projector, []))[1].append(record)
        for projector, batch in mine.values():
            apply_batch = getattr(projector, "apply_batch", None)
            if apply_batch is not None:
                if apply_batch(conn, batch) is not None:
                    return False
            elif any(projector.apply(conn, record) is not None for record in batch):
                return False
        return True

    def _write_projected(self, conn: sqlite3.Connection, record: Record) -> AppendResult:
        """Insert one record and run its projectors under a savepoint of its own."""
        conn.execute("SAVEPOINT record")
        cursor = conn.execute(INSERT, astuple(record))
        if cursor.rowcount == 0:
            conn.execute("RELEASE record")
            row = conn.execute(_SELECT_ONE, (record.stream, record.key)).fetchone()
            return AppendResult(row_to_stored(row), True)
        stored = record.stored(int(cursor.lastrowid or 0))
        for projector in self._projectors.get(record.stream, ()):
            refusal = projector.apply(conn, stored)
            if refusal is not None:
                conn.execute("ROLLBACK TO record")
                conn.execute("RELEASE record")
                return AppendResult(record.stored(0), False, refusal)
        conn.execute("RELEASE record")
        return AppendResult(stored, False)


class GroupCommitWriter:
    """Owns the write connection on a thread; commits submitted records in batches.

    Producers (on the event loop) call :meth:`submit`; ``settle`` is called
    on the loop once per batch with the batch and its results (or the
    exception that failed all of it).
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        loop: asyncio.AbstractEventLoop,
        settle: Settle,
        projectors: Sequence[Projector] = (),
        committed: Callable[[int], None] = lambda _records: None,
    ) -> None:
        self._batches = BatchWriter(conn, projectors, committed)
        self._loop = loop
        self._settle = settle
        self._appends: deque[PendingAppend] = deque()
        self._metas: deque[MetaWrite] = deque()
        self._wakeup = _Signal()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="tradewire-store-writer", daemon=True
        )
        self.stopped: asyncio.Future[None] = loop.create_future()
        """Resolved on the loop once the thread has closed the connection."""

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def submit(self, item: PendingAppend) -> None:
        """Queue one caller's records (atomically: they share a batch).

        The writer is not woken here: the store calls :meth:`wake` once per
        event-loop iteration, so every caller released by one commit, which
        resubmits in the same iteration, lands in the same next batch.
        """
        self._appends.append(item)

    def wake(self) -> None:
        """Let the writer take everything queued so far."""
        self._wakeup.set()

    def submit_meta(self, item: MetaWrite) -> None:
        """Queue a metadata write; it commits with the next batch."""
        self._metas.append(item)
        self._wakeup.set()

    def stop(self) -> None:
        """Ask the thread to commit what is queued, close the connection and exit."""
        self._stopping = True
        self._wakeup.set()

    @property
    def queued(self) -> int:
        """Records submitted but not yet taken into a batch."""
        return sum(len(records) for records, _ in list(self._appends))

    # -- writer thread ---------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                self._wakeup.wait()
                appends, metas = drain(self._appends, self._metas)
                if appends or metas:
                    self._commit(appends, metas)
                elif self._stopping:
                    return
        finally:
            self._batches.conn.close()
            self._loop.call_soon_threadsafe(_resolve, self.stopped)

    def _commit(self, appends: list[PendingAppend], metas: list[MetaWrite]) -> None:
        try:
            results = self._batches.commit(
                [r for records, _ in appends for r in records],
                [(name, value) for name, value, _ in metas],
            )
        except BaseException as exc:  # every caller must hear of it
            self._loop.call_soon_threadsafe(self._settle, appends, exc)
            self._loop.call_soon_threadsafe(fail_metas, metas, exc)
            return
        self._loop.call_soon_threadsafe(self._settle, appends, results)
        if metas:
            self._loop.call_soon_threadsafe(resolve_metas, metas)


def drain(
    appends: deque[PendingAppend], metas: deque[MetaWrite]
) -> tuple[list[PendingAppend], list[MetaWrite]]:
    """Everything queued so far (only the writer pops, so ``len()`` is a lower bound)."""
    return (
        [appends.popleft() for _ in range(len(appends))],
        [metas.popleft() for _ in range(len(metas))],
    )


def _dedupe(
    records: list[Record],
) -> tuple[list[Record], list[tuple[int, bool]]]:
    """Distinct records of a batch, and for each record (its slot, repeated-in-batch)."""
    index: dict[tuple[str, str], int] = {}
    fresh: list[Record] = []
    slots: list[tuple[int, bool]] = []
    for record in records:
        ident = (record.stream, record.key)
        slot = index.get(ident)
        if slot is None:
            index[ident] = slot = len(fresh)
            fresh.append(record)
            slots.append((slot, False))
        else:
            slots.append((slot, True))
    return fresh, slots


def _stored_fast(
    fresh: list[Record], base: int, inserted: int, top: int
) -> list[tuple[StoredRecord, bool]] | None:
    """Seqs without reading back, when every record was new and seqs are contiguous.

    Every new row's seq exceeds all seqs before it (``base`` at most), so
    ``inserted`` new rows when the highest seq is now ``top == base +
    inserted`` hold exactly ``base+1 .. base+inserted``, in insertion order.
    """
    if inserted != len(fresh) or top != base + inserted:
        return None
    return [(record.stored(base + 1 + i), False) for i, record in enumerate(fresh)]


def _stored_slow(
    conn: sqlite3.Connection, fresh: list[Record], base: int
) -> list[tuple[StoredRecord, bool]]:
    """Seqs of new rows read back; duplicates of earlier batches fetched whole."""
    new = {(stream, key): seq for seq, stream, key in conn.execute(_INSERTED_SINCE, (base,))}
    out: list[tuple[StoredRecord, bool]] = []
    for record in fresh:
        seq = new.get((record.stream, record.key))
        if seq is not None:
            out.append((record.stored(seq), False))
        else:
            row = conn.execute(_SELECT_ONE, (record.stream, record.key)).fetchone()
            out.append((row_to_stored(row), True))
    return out


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        # If even ROLLBACK fails the connection is unusable; the next BEGIN says so.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def batch_error(exc: BaseException, size: int) -> StoreError:
    """The error every caller of a failed batch receives (nothing was committed)."""
    error = StoreError(f"append batch of {size} record(s) failed, nothing committed: {exc}")
    error.__cause__ = exc
    return error


def fail_metas(metas: list[MetaWrite], exc: BaseException) -> None:
    for _, _, future in metas:
        if not future.done():
            future.set_exception(batch_error(exc, len(metas)))


def resolve_metas(metas: list[MetaWrite]) -> None:
    for _, _, future in metas:
        _resolve(future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
