"""SQLite adapter of the store port: WAL, group commit, idempotent appends.

Theory of operation
-------------------
Callers live on the asyncio loop; SQLite work lives on threads.

* **Admission.** ``append`` takes one slot of a bounded window
  (``max_pending``) before submitting; with no slot free it waits
  (backpressure). Slots come back when the batch holding the record has
  been settled, so memory never holds more than ``max_pending`` records.
* **Group commit.** One writer thread owns the only write connection. It
  sleeps until woken, drains *everything* queued, writes it with one
  ``executemany`` of a prepared ``INSERT ... ON CONFLICT DO NOTHING`` inside
  one ``BEGIN IMMEDIATE ... COMMIT``, and only after the commit returns
  releases every caller of the batch with a single
  ``loop.call_soon_threadsafe``. Submitters wake the writer once per loop
  iteration (a ``call_soon``), not per record: callers released by one
  commit resubmit in the same iteration and so share the next batch. While
  one batch commits (an fsync), the next one accumulates, so the cost of a
  commit is shared by every caller waiting at that moment: the more
  concurrent appenders, the bigger the batches.
* **Idempotency.** ``(stream, key)`` is unique. Copies of a key inside one
  batch are folded before the insert; a key already committed makes the
  insert do nothing. Seqs of new rows are derived without reading back
  (the highest seq before, remembered from the writer's last commit, and
  ``max(seq)`` after: contiguous when nothing was skipped and nobody else
  appended); otherwise the new rows are read back and duplicates return the
  stored record with ``duplicate=True``.
* **Projections.** Records of projected streams are written the same way
  (one ``executemany``), then their projectors run over the new ones in
  ``seq`` order, with no savepoint per record (a projector that implements
  :class:`~tradewire.store.BatchProjector` takes the whole batch in one
  call). Only when a projector refuses a record is the transaction rolled
  back and the batch redone one savepoint per record, so that the refused
  record alone is undone: refusals are rare, the common batch pays no
  savepoint at all (each statement of a commit is a GIL hand-off).
* **Failure.** Any error inside the transaction rolls it back and fails
  every caller of the batch with :class:`~tradewire.errors.StoreError`;
  nothing of it was acknowledged, so a retry (same keys) is safe.
* **Durability.** WAL journal. ``"fsync"`` runs ``synchronous=FULL``: the
  WAL is synced at each commit, an ack survives power loss. ``"os"`` runs
  ``synchronous=NORMAL``: a commit reaches the OS page cache, an ack
  survives the process being killed but not the machine losing power.
* **Checkpoints** (copying the WAL into the database file, and its fsync)
  run on a thread of their own
  (:class:`~tradewire.store._group_commit.Checkpointer`), once 1,000
  records were committed or 1 s after the last commit, never inside a
  commit: SQLite's automatic checkpoint would stall the commit that crosses
  the threshold for milliseconds. The writer keeps a 64 MiB page cache and its
  statement journals in memory.
* **Reads** run on a small thread pool, each thread with its own read-only
  connection; WAL lets them read a consistent snapshot while the writer
  commits.
* **Schema** is brought to the newest Alembic revision on open
  (:mod:`tradewire.store.migrations`).
* **Close** refuses new appends, waits until every admitted append has been
  settled, then stops the writer and closes the connections.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeVar

from tradewire.errors import StoreClosedError, StoreError
from tradewire.store import (
    DEFAULT_READ_LIMIT,
    AppendResult,
    Durability,
    Projector,
    Record,
    StoredRecord,
)
from tradewire.store._group_commit import (
    SELECT_COLUMNS,
    Checkpointer,
    GroupCommitWriter,
    MetaWrite,
    PendingAppend,
    batch_error,
    row_to_stored,
)
from tradewire.store._writer_process import ProcessWriter, WriterConfig
from tradewire.store.migrations import sqlite_url, upgrade_schema

log = logging.getLogger("tradewire.store")

__all__ = ["DB_FILENAME", "MEMORY_PRAGMAS", "SqliteStore", "open_store"]

DB_FILENAME = "tradewire.db"

_T = TypeVar("_T")
WriterKind = Literal["thread", "process"]
"""Where the store's writer runs: a thread of this process, or a process of its own."""
_SYNCHRONOUS: dict[str, str] = {"fsync": "FULL", "os": "NORMAL"}
MEMORY_PRAGMAS: Final = (
    # Statement journals (per-record savepoints) stay in memory (else a temp file
    # per commit and a write per changed page).
    "PRAGMA temp_store=MEMORY",
    # 64 MiB of page cache (default 2 MiB): the indexes' pages stay in memory.
    "PRAGMA cache_size=-65536",
)
"""The writer's memory settings (benchmarks give their raw ceilings the same)."""
_WRITER_PRAGMAS: Final = (
    *MEMORY_PRAGMAS,
    # Checkpoints run on the Checkpointer's thread, not inside a commit.
    "PRAGMA wal_autocheckpoint=0",
    # A WAL that grew in a burst is cut back to 64 MiB when it restarts.
    "PRAGMA journal_size_limit=67108864",
)


def connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A connection to the store's file (autocommit; usable from any thread)."""
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    return conn


def configure_writer(conn: sqlite3.Connection, durability: Durability) -> None:
    """Make ``conn`` the write connection: durability, cache, no automatic checkpoints."""
    conn.execute(f"PRAGMA synchronous={_SYNCHRONOUS[durability]}")
    conn.execute(f"PRAGMA fullfsync={int(durability == 'fsync')}")  # macOS
    for pragma in _WRITER_PRAGMAS:
        conn.execute(pragma)


async def open_store(
    data_dir: Path,
    durability: Durability = "fsync",
    *,
    max_pending: int = 8192,
    readers: int = 2,
    busy_timeout: float = 30.0,
    projectors: Sequence[Projector] = (),
    writer: WriterKind = "thread",
) -> SqliteStore:
    """Open (creating and migrating as needed) the store in ``data_dir/tradewire.db``.

    Use as ``async with await open_store(path) as store: ...``.
    """
    store = SqliteStore(
        Path(data_dir) / DB_FILENAME,
        durability=durability,
        max_pending=max_pending,
        readers=readers,
        busy_timeout=busy_timeout,
        projectors=projectors,
        writer=writer,
    )
    return await store.open()


class SqliteStore:
    """The :class:`~tradewire.store.Store` on one SQLite file (see module docs)."""

    def __init__(
        self,
        path: Path,
        *,
        durability: Durability = "fsync",
        max_pending: int = 8192,
        readers: int = 2,
        busy_timeout: float = 30.0,
        projectors: Sequence[Projector] = (),
        writer: WriterKind = "thread",
    ) -> None:
        if durability not in _SYNCHRONOUS:
            raise ValueError(f"durability must be 'fsync' or 'os', not {durability!r}")
        if writer not in ("thread", "process"):
            raise ValueError(f"writer must be 'thread' or 'process', not {writer!r}")
        self.writer_kind: WriterKind = writer
        if max_pending < 1 or readers < 1:
            raise ValueError("max_pending and readers must be at least 1")
        self.path = Path(path)
        self.durability: Durability = durability
        self.max_pending = max_pending
        self._busy_timeout = busy_timeout
        self._projectors = tuple(projectors)
        self._free = max_pending
        self._blocked = 0
        self._space: asyncio.Event | None = None
        self._closing = False
        self._flush_scheduled = False
        self._writer: GroupCommitWriter | ProcessWriter | None = None
        self._checkpointer: Checkpointer | None = None
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="tradewire-store-read")
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._read_conns_lock = threading.Lock()
        # Called on the loop with each committed batch's results, before its callers
        # resume (queued as the commit returns, so normally before the rows of a
        # read that saw the commit come back).
        self.commit_listeners: list[Callable[[Sequence[AppendResult]], None]] = []

    # -- introspection -----------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Appends admitted and not yet acknowledged (at most ``max_pending``)."""
        return self.max_pending - self._free

    @property
    def blocked(self) -> int:
        """Callers waiting for a free slot (backpressure)."""
        return self._blocked

    @property
    def writer_pid(self) -> int | None:
        """The writer process's id (``writer="process"``), else ``None``."""
        writer = self._writer
        return writer.child_pid if isinstance(writer, ProcessWriter) else None

    @property
    def queued(self) -> int:
        """Appends submitted that the writer has not yet taken into a batch."""
        return self._writer.queued if self._writer is not None else 0

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> Self:
        """Create/migrate the database and start the writer thread."""
        if self._writer is not None:
            return self
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(self._readers, self._prepare)
        except (sqlite3.Error, OSError) as exc:
            self._readers.shutdown(wait=False)
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        if self.writer_kind == "process":
            conn.close()
            config = WriterConfig(str(self.path), self.durability, self._busy_timeout)
            writer = ProcessWriter(config, loop, self._settle, self._projectors)
            try:
                await loop.run_in_executor(None, writer.start)
            except (StoreError, OSError) as exc:
                self._readers.shutdown(wait=False)
                raise StoreError(f"cannot open store {self.path}: {exc}") from exc
            await writer.listen()
            self._writer = writer
            return self
        self._checkpointer = Checkpointer(self._connect)
        self._checkpointer.start()
        self._writer = GroupCommitWriter(
            conn, loop, self._settle, self._projectors, self._checkpointer.committed
        )
        self._writer.start()
        return self

    def _prepare(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        conn.execute("PRAGMA journal_mode=WAL")
        upgrade_schema(sqlite_url(self.path))
        configure_writer(conn, self.durability)
        return conn

    def _connect(self) -> sqlite3.Connection:
        return connect(self.path, self._busy_timeout)

    async def close(self) -> None:
        """Commit every admitted append, then stop the writer and readers. Idempotent."""
        if self._closing:
            return
        self._closing = True
        writer = self._writer
        if writer is not None:
            while self._free < self.max_pending or self._blocked:
                await self._space_event().wait()
            writer.stop()
            await writer.stopped
        loop = asyncio.get_running_loop()
        if self._checkpointer is not None:
            await loop.run_in_executor(None, self._checkpointer.stop)
        await loop.run_in_executor(None, self._close_readers)

    def _close_readers(self) -> None:
        self._readers.shutdown(wait=True)
        with self._read_conns_lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- appends -----------------------------------------------------------

    async def append(self, record: Record) -> AppendResult:
        """Store ``record`` durably, or return its earlier copy; return after commit."""
        return (await self.append_many((record,)))[0]

    async def append_many(self, records: Sequence[Record]) -> list[AppendResult]:
        """Append ``records`` in order, in as few commits as the window allows.

        Each chunk admitted at once is one submission with one future (not one
        per record): it lands in one batch and is settled in one call.
        """
        writer = self._open_writer()
        if not records:
            return []
        loop = asyncio.get_running_loop()
        if len(records) <= self._free:  # the common case: one chunk
            self._free -= len(records)
            future: asyncio.Future[list[AppendResult]] = loop.create_future()
            writer.submit((records, future))
            if not self._flush_scheduled:
                self._schedule_flush(loop)
            return await future
        futures: list[asyncio.Future[list[AppendResult]]] = []
        start = 0
        while start < len(records):
            if self._free <= 0:
                await self._wait_for_space()
            end = min(len(records), start + self._free)
            self._free -= end - start
            chunk: asyncio.Future[list[AppendResult]] = loop.create_future()
            writer.submit((records[start:end], chunk))
            if not self._flush_scheduled:
                self._schedule_flush(loop)
            futures.append(chunk)
            start = end
        return [result for chunk in futures for result in await chunk]

    async def set_meta(self, name: str, value: str) -> None:
        """Durably set a metadata value; committed with the next batch."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        item: MetaWrite = (name, value, future)
        self._open_writer().submit_meta(item)
        await future

    def _schedule_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wake the writer at the end of this loop iteration, once for all submitters."""
        self._flush_scheduled = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._writer is not None:
            self._writer.wake()

    def _open_writer(self) -> GroupCommitWriter | ProcessWriter:
        if self._closing:
            raise StoreClosedError(f"store {self.path} is closed")
        if self._writer is None:
            raise StoreError(f"store {self.path} is not open (await store.open())")
        return self._writer

    async def _wait_for_space(self) -> None:
        self._blocked += 1
        try:
            while self._free <= 0:
                await self._space_event().wait()
        finally:
            self._blocked -= 1

    def _space_event(self) -> asyncio.Event:
        if self._space is None:
            self._space = asyncio.Event()
        return self._space

    def _settle(
        self, batch: list[PendingAppend], outcome: list[AppendResult] | BaseException
    ) -> None:
        """On the loop: release every caller of a batch, then free its slots."""
        taken = sum(len(records) for records, _ in batch)
        if isinstance(outcome, BaseException):
            for _, future in batch:
                if not future.done():
                    future.set_exception(batch_error(outcome, taken))
        else:
            for listener in self.commit_listeners:
                try:
                    listener(outcome)
                except Exception:  # a listener's bug must not strand the appenders
                    log.exception("commit listener failed")
            start = 0
            for records, future in batch:
                end = start + len(records)
                if not future.done():
                    future.set_result(outcome[start:end])
                start = end
        self._free += taken
        if self._space is not None:
            self._space.set()
            self._space = None

    # -- reads -------------------------------------------------------------

    async def get(self, stream: str, key: str) -> StoredRecord | None:
        """The stored record with this idempotency key, or ``None``."""
        rows = await self._query(SELECT_COLUMNS + ' WHERE stream = ? AND "key" = ?', (stream, key))
        return row_to_stored(rows[0]) if rows else None

    async def read(
        self,
        stream: str,
        after_seq: int = 0,
        limit: int = DEFAULT_READ_LIMIT,
        *,
        user_id: str | None = None,
    ) -> list[StoredRecord]:
        """Up to ``limit`` records of ``stream`` after ``after_seq``, oldest first."""
        where, args = "stream = ? AND seq > ?", [stream, after_seq]
        if user_id is not None:
            where += " AND user_id = ?"
            args.append(user_id)
        sql = f"{SELECT_COLUMNS} WHERE {where} ORDER BY seq LIMIT ?"
        return [row_to_stored(row) for row in await self._query(sql, (*args, limit))]

    async def count(self, stream: str) -> int:
        """Number of records stored in ``stream``."""
        rows = await self._query("SELECT count(*) FROM records WHERE stream = ?", (stream,))
        return int(rows[0][0])

    async def get_meta(self, name: str) -> str | None:
        """A metadata value, or ``None``."""
        rows = await self._query("SELECT value FROM meta WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else None

    async def query(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only SQL query (``?`` placeholders) on a reader connection.

        For the query side of projections; never blocks the writer.
        """
        return await self._query(sql, args)

    async def _query(self, sql: str, args: Sequence[object]) -> list[tuple[Any, ...]]:
        def run(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(sql, args).fetchall()

        return await self._on_reader(run)

    async def _on_reader(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._closing:
            raise StoreClosedError(f"store {self.path} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, self._with_read_conn, fn)
        except sqlite3.Error as exc:
            raise StoreError(f"read from store {self.path} failed: {exc}") from exc

    def _with_read_conn(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=1")
            self._local.conn = conn
            with self._read_conns_lock:
                self._read_conns.append(conn)
        return fn(conn)
