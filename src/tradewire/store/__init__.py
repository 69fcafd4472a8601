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

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Generic, Literal, Protocol, Self, TypeVar, cast, runtime_checkable

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
    "execute_many",
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
