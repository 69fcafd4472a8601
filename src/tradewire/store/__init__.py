"""The storage port: an append-only, idempotent log of records per stream.

The core of tradewire depends only on this module: the :class:`Store`
protocol and the immutable values it speaks. Adapters implement it (SQLite in
:mod:`tradewire.store.sqlite`, PostgreSQL later) and are the only code that
imports a database library; the core never imports an adapter.

Semantics every adapter guarantees:

* **Acknowledged means durable.** ``append`` returns only after the
  transaction holding the record has committed with the store's durability.
* **Idempotent by (stream, key).** Appending a key that is already stored
  adds no row and returns the stored record with ``duplicate=True``, also
  when both copies arrive in the same batch.
* **Ordered.** ``seq`` increases monotonically across all streams and is
  never reused; ``read(stream, after_seq=...)`` replays in ``seq`` order.
* **Bounded.** Pending appends are bounded; a full store makes ``append``
  wait (backpressure) instead of growing memory.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from itertools import chain
from types import TracebackType
from typing import Any, Final, Generic, Literal, Protocol, Self, TypeVar, cast, runtime_checkable

import msgspec

__all__ = [
    "DEFAULT_READ_LIMIT",
    "AppendResult",
    "BatchProjector",
    "DecodedBody",
    "Durability",
    "Projector",
    "Record",
    "Refusal",
    "SqlExecutor",
    "Store",
    "StoredRecord",
    "execute_inline_nulls",
    "execute_many",
    "execute_values",
]

Durability = Literal["fsync", "os"]
"""What an acknowledged append survives.

``"fsync"``: every commit is flushed to stable storage (survives power loss).
``"os"``: every commit reaches the operating system (survives a killed
process, not a power loss or kernel crash); faster.
"""

DEFAULT_READ_LIMIT = 1000


_D = TypeVar("_D")


class DecodedBody(bytes, Generic[_D]):
    """Record body bytes that also carry the value they decode to.

    Whoever appends a record usually decoded (or built) its body first:
    handing that value along with the bytes spares the writer thread (the
    throughput bottleneck) a second decode in the projectors. A body read
    back from the store (``rebuild``, a restart) is plain ``bytes`` and is
    decoded: the same function of the same bytes, so both paths project the
    same rows.
    """

    decoded: _D

    @classmethod
    def of(cls, raw: bytes, decoded: _D) -> Self:
        """``raw`` carrying ``decoded``."""
        body = cls(raw)
        cast(Any, body).decoded = decoded  # Self leaves _D unbound for the checker
        return body


class Record(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A record to append.

    ``stream`` names the log (``"user_event"``, ``"ingest"``), ``key`` is the
    idempotency key within it (an ``event_id`` or a ``msg_id``), ``body`` the
    opaque payload (protobuf or JSON bytes). ``kind`` (event or message type),
    ``user_id`` and ``created_at_ms`` (Unix milliseconds) are indexed columns
    the store can filter on without decoding the body.
    """

    stream: str
    key: str
    body: bytes
    kind: str
    created_at_ms: int
    user_id: str | None = None

    def stored(self, seq: int) -> StoredRecord:
        """The record as stored at ``seq`` (the inverse of :meth:`StoredRecord.to_record`)."""
        return StoredRecord(
            seq=seq,
            stream=self.stream,
            key=self.key,
            body=self.body,
            kind=self.kind,
            created_at_ms=self.created_at_ms,
            user_id=self.user_id,
        )


class StoredRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A committed record: the fields of :class:`Record` plus its ``seq``."""

    seq: int
    stream: str
    key: str
    body: bytes
    kind: str
    created_at_ms: int
    user_id: str | None = None

    def to_record(self) -> Record:
        """The record as it was appended (without its ``seq``)."""
        return Record(
            stream=self.stream,
            key=self.key,
            body=self.body,
            kind=self.kind,
            created_at_ms=self.created_at_ms,
            user_id=self.user_id,
        )


class Refusal(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Why a projector refused a record: it was *not* stored.

    ``code`` is stable (``EXECUTION_CONFLICT``...), ``message`` says what to
    do, ``field`` names the offending field when there is one.
    """

    code: str
    message: str
    field: str | None = None


class AppendResult(msgspec.Struct, frozen=True, gc=False):
    """Outcome of one append: the stored record, and whether it was already there.

    When ``duplicate`` is true, ``record`` is the copy stored first (its body
    may differ from the one just offered, which was discarded). When
    ``refusal`` is set a projector refused the record: nothing was stored
    and ``record.seq`` is 0.
    """

    record: StoredRecord
    duplicate: bool
    refusal: Refusal | None = None


class SqlExecutor(Protocol):
    """The part of a DB-API connection a projector uses (``?`` placeholders)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any:
        """Run one statement; returns a cursor."""
        ...


def execute_many(db: SqlExecutor, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run ``sql`` once per row: one ``executemany`` when the connection has it."""
    many = getattr(db, "executemany", None)
    if many is not None:
        many(sql, rows)
        return
    for row in rows:
        db.execute(sql, row)


def execute_inline_nulls(db: SqlExecutor, sql: str, parameters: Sequence[Any]) -> Any:
    """Run ``sql`` with each ``None`` parameter written into it as ``NULL``; the cursor.

    Python's sqlite3 binds ``None`` through its adapter registry (a tuple, a dict
    lookup and two attribute lookups per value: about 0.8 us each on this
    machine, measured), while a literal ``NULL`` costs nothing: for a statement
    with many optional columns (an order upsert has about 20, most of them
    absent) that is a large part of the writer's time. The variants of ``sql``
    are cached per pattern of absent values. ``sql`` must use ``?``
    placeholders only, and no ``?`` anywhere else.
    """
    absent = bytes(value is None for value in parameters)
    if not any(absent):
        return db.execute(sql, parameters)
    present = [value for value in parameters if value is not None]
    return db.execute(_with_nulls(sql, absent), present)


@functools.lru_cache(maxsize=1024)
def _with_nulls(sql: str, absent: bytes) -> str:
    parts = sql.split("?")
    if len(parts) != len(absent) + 1:
        raise ValueError(f"{len(absent)} parameters for {len(parts) - 1} placeholders: {sql}")
    out = [parts[0]]
    for null, part in zip(absent, parts[1:], strict=True):
        out.append("NULL" if null else "?")
        out.append(part)
    return "".join(out)


MAX_VALUES_ROWS: Final = 256
"""Most rows one :func:`execute_values` statement carries."""


def execute_values(
    db: SqlExecutor,
    head: str,
    row: str,
    rows: Sequence[Sequence[Any]],
    tail: str = "",
    *,
    key: Callable[[Sequence[Any]], object] | None = None,
    inline_nulls: bool = False,
) -> int:
    """Run ``{head} VALUES {row}, {row}, ... {tail}`` over ``rows``, in order; rows changed.

    Python's sqlite3 releases the GIL around every step of a statement, and
    ``executemany`` steps once per row: a writer thread inserting N rows that
    way waits N times to get the GIL back from the event loop (measured under
    the ingest benchmark: a commit of 1,000 records spent about three times
    its CPU time waiting). One statement of many rows steps once.

    Rows go in statements of power-of-two sizes (at most ``MAX_VALUES_ROWS``),
    so a table needs few statement texts, each prepared once and cached.
    ``key``: no statement holds two rows of the same key (an upsert must not
    touch one row twice in one statement: PostgreSQL refuses it), so a repeated
    key starts a new statement, which sees the earlier one. ``inline_nulls``:
    ``None`` values are written into the statement as ``NULL`` (see
    :func:`execute_inline_nulls`); rows with another pattern of ``None`` values
    start a new statement. ``row`` must use ``?`` placeholders only.
    """
    changed = 0
    chunk: list[Sequence[Any]] = []
    seen: set[object] = set()
    pattern = b""
    for values in rows:
        if inline_nulls:
            absent = bytes(value is None for value in values)
            if absent != pattern:
                changed += _values_chunk(db, head, row, tail, chunk, pattern)
                chunk, seen, pattern = [], set(), absent
        if key is not None:
            ident = key(values)
            if ident in seen:
                changed += _values_chunk(db, head, row, tail, chunk, pattern)
                chunk, seen = [], set()
            seen.add(ident)
        chunk.append(values)
        if len(chunk) == MAX_VALUES_ROWS:
            changed += _values_chunk(db, head, row, tail, chunk, pattern)
            chunk, seen = [], set()
    return changed + _values_chunk(db, head, row, tail, chunk, pattern)


def _values_chunk(
    db: SqlExecutor,
    head: str,
    row: str,
    tail: str,
    chunk: list[Sequence[Any]],
    absent: bytes,
) -> int:
    changed = 0
    start = 0
    present = None if not any(absent) else [i for i, null in enumerate(absent) if not null]
    while start < len(chunk):
        size = 1 << ((len(chunk) - start).bit_length() - 1)  # largest power of two that fits
        piece = chunk[start : start + size]
        if present is None:
            args = list(chain.from_iterable(piece))
            sql = _values_sql(head, row, tail, size)
        else:
            args = [values[i] for values in piece for i in present]
            sql = _values_sql(head, _with_nulls(row, absent), tail, size)
        changed += db.execute(sql, args).rowcount
        start += size
    return changed


@functools.lru_cache(maxsize=256)
def _values_sql(head: str, row: str, tail: str, size: int) -> str:
    return f"{head} VALUES {', '.join([row] * size)} {tail}".rstrip()


class Projector(Protocol):
    """Keeps query tables in step with the log, inside the append's transaction.

    The writer calls :meth:`apply` for every *newly* stored record of one of
    ``streams``, in ``seq`` order, in the same transaction as the insert: the
    record and its projection commit together or not at all. Returning a
    :class:`Refusal` undoes both for that record only (a savepoint); the
    other records of the batch are unaffected. :meth:`reset` empties the
    projector's tables, so replaying the log rebuilds them.
    """

    streams: frozenset[str]

    def apply(self, db: SqlExecutor, record: StoredRecord) -> Refusal | None:
        """Project one stored record, or refuse it."""
        ...

    def reset(self, db: SqlExecutor) -> None:
        """Delete everything this projector derived."""
        ...


class BatchProjector(Projector, Protocol):
    """A projector that can apply a whole batch at once (optional, for speed).

    The writer first tries every batch optimistically: one ``executemany``
    for the records, then :meth:`apply_batch` with the new records of the
    projector's streams, in ``seq`` order, with no savepoint per record (so
    the projector may remember things between records and defer writes to
    the end of the batch). When it returns the index of a refused record,
    the writer rolls the whole batch back and redoes it record by record
    with :meth:`~Projector.apply`, which refuses that record alone.
    """

    def apply_batch(self, db: SqlExecutor, records: Sequence[StoredRecord]) -> int | None:
        """Project every record; the index of the first refused one, or ``None``."""
        ...


@runtime_checkable
class Store(Protocol):
    """The durable store the core writes to and replays from.

    A store is an async context manager: leaving the ``async with`` block
    closes it, after every append already submitted has been committed.
    """

    async def append(self, record: Record) -> AppendResult:
        """Store ``record`` durably (or find its earlier copy); return after commit."""
        ...

    async def append_many(self, records: Sequence[Record]) -> list[AppendResult]:
        """Append several records, in order, in as few commits as possible.

        Results are in the order of ``records``. A key repeated inside
        ``records`` is stored once; its later copies come back as duplicates.
        """
        ...

    async def get(self, stream: str, key: str) -> StoredRecord | None:
        """The stored record with this idempotency key, or ``None``."""
        ...

    async def read(
        self,
        stream: str,
        after_seq: int = 0,
        limit: int = DEFAULT_READ_LIMIT,
        *,
        user_id: str | None = None,
    ) -> list[StoredRecord]:
        """Up to ``limit`` records of ``stream`` with ``seq > after_seq``, oldest first.

        With ``user_id``, only that user's records. Replay a whole stream by
        passing the last ``seq`` seen as the next ``after_seq``.
        """
        ...

    async def count(self, stream: str) -> int:
        """Number of records stored in ``stream``."""
        ...

    async def get_meta(self, name: str) -> str | None:
        """A value of the store's key-value metadata, or ``None``."""
        ...

    async def set_meta(self, name: str, value: str) -> None:
        """Durably set a metadata value (committed like an append)."""
        ...

    async def close(self) -> None:
        """Commit everything submitted, then release the store. Idempotent."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
