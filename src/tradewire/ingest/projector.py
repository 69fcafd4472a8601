"""The ingest projector: turns each stored ``ingest`` record into table rows.

Theory of operation
-------------------
The store calls :meth:`IngestProjector.apply` on its writer thread, inside
the append transaction, once per *newly* stored record, in ``seq`` order, so
the projections commit together with the record and an ``ack`` (sent only
after that commit) means "stored and projected". The record body is the
envelope JSON; it is decoded again here (a pure function of the bytes), so
``tradewire rebuild`` replaying the log produces the very same rows.

A fact that contradicts the projections (a fill resent with other values,
someone else's run) is *refused*: :class:`~tradewire.store.Refusal` rolls
the record back (nothing stored, nothing projected) and the sender gets an
``error`` with that code. A ``batch_ingest`` is one record: all of its
events are projected in order or, if one is refused, none.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from tradewire.ingest.projections import (
    Fact,
    ProjectionBatch,
    project_account,
    project_execution,
    project_instance,
    project_market_data,
    project_oco_group,
    project_order,
    project_position,
    project_run_event,
    touch_run,
)
from tradewire.ingest.values import json_text, utc_text
from tradewire.store import DecodedBody, Refusal, SqlExecutor, StoredRecord
from tradewire.wire import Envelope, ErrorReport, Heartbeat, IngestEvent, LogRecord, Rejection
from tradewire.wire.envelope import decode_envelope
from tradewire.wire.ingest_payloads import (
    AccountUpdate,
    BatchIngest,
    Execution,
    InstanceUpdated,
    MarketData,
    OcoGroupCreated,
    Order,
    PositionUpdate,
    StrategyEvent,
    WireModel,
)

__all__ = ["INGEST_STREAM", "PROJECTION_TABLES", "EnvelopeBody", "IngestProjector"]

log = logging.getLogger("tradewire.ingest")

INGEST_STREAM: Final = "ingest"
PROJECTION_TABLES: Final = (
    "strategies",
    "instances",
    "runs",
    "orders",
    "order_status_history",
    "executions",
    "oco_groups",
    "series",
    "bars",
    "accounts",
    "positions",
    "logs",
    "ingest_errors",
    "sources",
)
"""Every table :class:`IngestProjector` derives (emptied by ``reset``)."""
_NO_LIMIT: Final = 1 << 40

_LOG_INSERT: Final = (
    "INSERT INTO logs (seq, msg_id, user_id, source, ts_utc, level, name, message, run_id, "
    "meta_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_ERROR_INSERT: Final = (
    "INSERT INTO ingest_errors (seq, msg_id, user_id, source, ts_utc, code, message, "
    "details_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_HEARTBEAT_UPSERT: Final = (
    "INSERT INTO sources (source, user_id, status, last_heartbeat_utc, last_seen_utc, heartbeats) "
    "VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (user_id, source) DO UPDATE SET "
    "status = excluded.status, "
    "last_heartbeat_utc = excluded.last_heartbeat_utc, last_seen_utc = excluded.last_seen_utc, "
    "heartbeats = sources.heartbeats + 1"
)


class EnvelopeBody(DecodedBody[Envelope]):
    """An ``ingest`` record body that carries its decoded envelope (see ``DecodedBody``)."""


def _decoded(body: bytes) -> Envelope | Rejection:
    if isinstance(body, EnvelopeBody):
        return body.decoded
    return decode_envelope(body, max_bytes=_NO_LIMIT)


class IngestProjector:
    """Projects the ``ingest`` stream into the tables of revision ``0003_ingest``."""

    streams: frozenset[str] = frozenset({INGEST_STREAM})

    def apply(self, db: SqlExecutor, record: StoredRecord) -> Refusal | None:
        """Project one stored message, or refuse it."""
        return _apply(db, record, None)

    def apply_batch(self, db: SqlExecutor, records: Sequence[StoredRecord]) -> int | None:
        """Project a batch in one go; the index of the first refused record, or ``None``.

        The writer rolls the whole batch back on a refusal (see
        :class:`~tradewire.store.BatchProjector`), so the batch's shared state
        and deferred writes are simply dropped then.
        """
        batch = ProjectionBatch()
        for index, record in enumerate(records):
            if _apply(db, record, batch) is not None:
                return index
        batch.flush(db)
        return None

    def reset(self, db: SqlExecutor) -> None:
        """Empty every projection table (``tradewire rebuild`` refills them)."""
        for table in PROJECTION_TABLES:
            db.execute(f"DELETE FROM {table}")


def _apply(db: SqlExecutor, record: StoredRecord, batch: ProjectionBatch | None) -> Refusal | None:
    envelope = _decoded(record.body)
    if isinstance(envelope, Rejection):  # only valid messages are appended
        return Refusal(code=envelope.code, message=envelope.message, field=envelope.field)
    try:
        return _project(db, record, envelope, batch)
    except ValueError as exc:  # e.g. a timestamp out of range for the columns
        return Refusal(code="PROJECTION_ERROR", message=f"cannot project: {exc}")


def _project(
    db: SqlExecutor, record: StoredRecord, envelope: Envelope, batch: ProjectionBatch | None
) -> Refusal | None:
    payload = envelope.payload
    if isinstance(payload, IngestEvent):
        return _project_event(db, record, payload, batch)
    if isinstance(payload, LogRecord):
        return _project_log(db, record, envelope, payload)
    if isinstance(payload, Heartbeat):
        stamp = utc_text(payload.timestamp)
        args = (envelope.source, record.user_id or "", payload.status, stamp, stamp)
        db.execute(_HEARTBEAT_UPSERT, args)
    elif isinstance(payload, ErrorReport):
        who = (record.seq, envelope.msg_id, record.user_id, envelope.source)
        details = json_text(payload.details)
        stamp = utc_text(envelope.timestamp)
        db.execute(_ERROR_INSERT, (*who, stamp, payload.code, payload.message, details))
    return None


def _project_log(
    db: SqlExecutor, record: StoredRecord, envelope: Envelope, entry: LogRecord
) -> Refusal | None:
    meta = entry.meta if isinstance(entry.meta, dict) else {}
    run_id = meta.get("run_id")
    db.execute(
        _LOG_INSERT,
        (
            *(record.seq, envelope.msg_id, record.user_id, envelope.source),
            *(utc_text(entry.timestamp), entry.level.upper(), entry.name, entry.message),
            *(run_id if isinstance(run_id, str) else None, json_text(entry.meta)),
        ),
    )
    return None


def _project_event(
    db: SqlExecutor, record: StoredRecord, event: IngestEvent, batch: ProjectionBatch | None
) -> Refusal | None:
    fact = Fact(
        seq=record.seq,
        user_id=record.user_id,
        run_id=event.run_id,
        event_utc=utc_text(event.event_utc),
    )
    refused = touch_run(db, fact, batch)
    if refused is not None:
        return refused
    data = event.payload_json
    if isinstance(data, BatchIngest):
        return _project_batch_ingest(db, fact, data, batch)
    return _project_fact(db, fact, data, batch)


def _project_batch_ingest(
    db: SqlExecutor, fact: Fact, ingest: BatchIngest, batch: ProjectionBatch | None
) -> Refusal | None:
    for index, item in enumerate(ingest.events):
        path = f"payload.payload_json.events[{index}]"
        refused = _project_fact(db, _at(fact, path, index), item, batch)
        if refused is not None:
            return refused
    return None


def _at(fact: Fact, path: str, ordinal: int) -> Fact:
    return Fact(
        seq=fact.seq,
        user_id=fact.user_id,
        run_id=fact.run_id,
        event_utc=fact.event_utc,
        path=path,
        ordinal=ordinal,
    )


def _project_fact(
    db: SqlExecutor, fact: Fact, data: WireModel, batch: ProjectionBatch | None = None
) -> Refusal | None:
    # Order and Execution are checked before their batch subclasses (isinstance covers both).
    if isinstance(data, Order):
        return project_order(db, fact, data, batch)
    if isinstance(data, Execution):
        return project_execution(db, fact, data)
    if isinstance(data, MarketData):
        return project_market_data(db, fact, data)
    if isinstance(data, AccountUpdate):
        return project_account(db, fact, data)
    if isinstance(data, PositionUpdate):
        return project_position(db, fact, data)
    if isinstance(data, OcoGroupCreated):
        return project_oco_group(db, fact, data.oco_group)
    if isinstance(data, InstanceUpdated):
        return project_instance(db, fact, data.instance)
    if isinstance(data, StrategyEvent):
        return project_run_event(db, fact, data.event, data.extra)
    return None  # other system events: kept in the log only
