"""SQL of the ingest projections: one function per fact, run in the append transaction.

Every statement is portable (SQLite >= 3.24 and PostgreSQL): ``?``
placeholders (the PostgreSQL adapter translates them), ``INSERT ... ON
CONFLICT (...) DO UPDATE SET col = excluded.col`` upserts, no ``REPLACE``, no
``INSERT OR IGNORE``. Each function returns a :class:`~tradewire.store.Refusal`
when the fact contradicts what is stored (the writer then rolls the whole
record back), else ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from tradewire.ingest.order_status import TERMINAL_RANK, normalize_status, status_rank
from tradewire.ingest.values import (
    fingerprint,
    json_text,
    money_text,
    opt,
    utc_text,
    utc_text_or,
)
from tradewire.store import Refusal, SqlExecutor, execute_inline_nulls, execute_values
from tradewire.wire.ingest_payloads import (
    AccountUpdate,
    Execution,
    MarketData,
    OcoGroup,
    Order,
    PositionUpdate,
    StrategyInstance,
)

__all__ = [
    "Fact",
    "ProjectionBatch",
    "project_account",
    "project_execution",
    "project_instance",
    "project_market_data",
    "project_oco_group",
    "project_order",
    "project_position",
    "project_run_event",
    "touch_run",
]


class Fact(msgspec.Struct, frozen=True, kw_only=True):
    """Where a projected fact comes from: the record and its ingest event."""

    seq: int
    user_id: str | None
    run_id: str
    event_utc: str
    path: str = "payload.payload_json"
    ordinal: int = 0


class ProjectionBatch:
    """What the projections of one optimistic batch share (one transaction, no savepoints).

    Run owners already read or written in this batch are remembered (one
    ``SELECT`` per run per batch rather than per message). Order upserts and
    their status history rows are deferred to :meth:`flush` and written with a
    few multi-row statements (see :func:`~tradewire.store.execute_values`):
    whether each update moved its order is decided here, from the stored
    ranks read with one ``SELECT`` and the batch's own earlier updates, by the
    same rule as the upsert's ``WHERE`` clause (a property test holds the two
    paths equal). Valid only because a refused record rolls the whole batch
    back (see :class:`~tradewire.store.BatchProjector`): nothing remembered here
    can outlive a rollback.
    """

    def __init__(self) -> None:
        self.run_owners: dict[str, str | None] = {}
        self.orders: list[tuple[object, ...]] = []
        self.order_events: list[tuple[str, int, int, str, int, str]] = []

    def flush(self, db: SqlExecutor) -> None:
        """Write what was deferred."""
        if not self.orders:
            return
        ranks = _stored_ranks(db, {event[0] for event in self.order_events})
        history: list[tuple[object, ...]] = []
        for order_id, seq, ordinal, status, rank, event_utc in self.order_events:
            stored = ranks.get(order_id)
            applied = stored is None or (stored < TERMINAL_RANK and rank >= stored)
            if applied:
                ranks[order_id] = rank
            history.append((order_id, seq, ordinal, status, int(applied), event_utc))
        execute_values(
            db, _ORDER_HEAD, _ORDER_ROW, self.orders, _ORDER_TAIL, key=_first, inline_nulls=True
        )
        execute_values(db, _HISTORY_HEAD, _HISTORY_ROW, history)
        self.orders.clear()
        self.order_events.clear()


def _first(values: Sequence[object]) -> object:
    return values[0]


_RANKS_CHUNK: Final = 500


def _stored_ranks(db: SqlExecutor, order_ids: set[str]) -> dict[str, int]:
    """``status_rank`` of each of ``order_ids`` already stored."""
    ids = sorted(order_ids)
    ranks: dict[str, int] = {}
    for start in range(0, len(ids), _RANKS_CHUNK):
        chunk = ids[start : start + _RANKS_CHUNK]
        marks = ", ".join("?" * len(chunk))
        sql = f"SELECT order_id, status_rank FROM orders WHERE order_id IN ({marks})"
        ranks.update(db.execute(sql, chunk).fetchall())
    return ranks


# --- runs -------------------------------------------------------------------------

_RUN_OWNER: Final = "SELECT user_id FROM runs WHERE run_id = ?"
_RUN_INSERT: Final = (
    "INSERT INTO runs (run_id, user_id, status, first_seen_utc, first_seq) "
    "VALUES (?, ?, 'CREATED', ?, ?) ON CONFLICT (run_id) DO NOTHING"
)
_RUN_STARTED: Final = (
    "UPDATE runs SET status = ?, started_utc = COALESCE(started_utc, ?), "
    "strategy_id = COALESCE(?, strategy_id), instance_id = COALESCE(?, instance_id) "
    "WHERE run_id = ?"
)
_RUN_ENDED: Final = (
    "UPDATE runs SET status = ?, ended_utc = ?, "
    "strategy_id = COALESCE(?, strategy_id), instance_id = COALESCE(?, instance_id) "
    "WHERE run_id = ?"
)


def touch_run(db: SqlExecutor, fact: Fact, batch: ProjectionBatch | None = None) -> Refusal | None:
    """Create the run on first sight (owned by the key's user); refuse someone else's run."""
    owners = batch.run_owners if batch is not None else {}
    if fact.run_id in owners:
        owner = owners[fact.run_id]
    else:
        row = db.execute(_RUN_OWNER, (fact.run_id,)).fetchone()
        if row is None:
            db.execute(_RUN_INSERT, (fact.run_id, fact.user_id, fact.event_utc, fact.seq))
            owners[fact.run_id] = fact.user_id
            return None
        owner = owners[fact.run_id] = row[0]
    if owner is not None and fact.user_id is not None and owner != fact.user_id:
        return Refusal(
            code="RUN_NOT_OWNED",
            message=f"Run {fact.run_id!r} belongs to another user: "
            "write it with its owner's key, or use a new run_id.",
            field="payload.run_id",
        )
    return None


def project_run_event(
    db: SqlExecutor, fact: Fact, event: str, extra: dict[str, object]
) -> Refusal | None:
    """``run_started`` / ``run_ended`` (also ``run_completed``, ``run_failed``)."""
    strategy_id = _text_or_none(extra.get("strategy_id"))
    instance_id = _text_or_none(extra.get("instance_id"))
    status = _text_or_none(extra.get("status"))
    if event == "run_started":
        args = (status or "RUNNING", fact.event_utc, strategy_id, instance_id, fact.run_id)
        db.execute(_RUN_STARTED, args)
    elif event in ("run_ended", "run_completed", "run_failed"):
        default = {"run_failed": "FAILED"}.get(event, "ENDED")
        args = (status or default, fact.event_utc, strategy_id, instance_id, fact.run_id)
        db.execute(_RUN_ENDED, args)
    return None


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


# --- strategies and instances ---------------------------------------------------------

_STRATEGY_UPSERT: Final = (
    "INSERT INTO strategies (strategy_id, user_id, first_seq, last_seq) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (strategy_id) DO UPDATE SET last_seq = excluded.last_seq"
)
_INSTANCE_UPSERT: Final = (
    "INSERT INTO instances (instance_id, strategy_id, user_id, run_id, instance_name, "
    "parameters_json, symbols_json, timeframe, venue, created_utc, updated_utc, last_seq) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (instance_id) DO UPDATE SET "
    "strategy_id = excluded.strategy_id, run_id = excluded.run_id, "
    "instance_name = COALESCE(excluded.instance_name, instances.instance_name), "
    "parameters_json = COALESCE(excluded.parameters_json, instances.parameters_json), "
    "symbols_json = COALESCE(excluded.symbols_json, instances.symbols_json), "
    "timeframe = COALESCE(excluded.timeframe, instances.timeframe), "
    "venue = COALESCE(excluded.venue, instances.venue), "
    "created_utc = COALESCE(instances.created_utc, excluded.created_utc), "
    "updated_utc = excluded.updated_utc, last_seq = excluded.last_seq"
)
_RUN_INSTANCE: Final = (
    "UPDATE runs SET strategy_id = COALESCE(strategy_id, ?), "
    "instance_id = COALESCE(instance_id, ?) WHERE run_id = ?"
)


def project_instance(db: SqlExecutor, fact: Fact, instance: StrategyInstance) -> Refusal | None:
    """``instance_updated``: upsert the instance and its strategy; link the run."""
    db.execute(_STRATEGY_UPSERT, (instance.strategy_id, fact.user_id, fact.seq, fact.seq))
    created = instance.created_utc
    db.execute(
        _INSTANCE_UPSERT,
        (
            instance.instance_id,
            instance.strategy_id,
            fact.user_id,
            fact.run_id,
            opt(instance.instance_name),
            json_text(instance.parameters_json),
            json_text(instance.symbols_json),
            opt(instance.timeframe),
            opt(instance.venue),
            utc_text(created) if isinstance(created, str) else None,
            fact.event_utc,
            fact.seq,
        ),
    )
    db.execute(_RUN_INSTANCE, (instance.strategy_id, instance.instance_id, fact.run_id))
    return None


# --- orders -----------------------------------------------------------------------

# One statement per order event: insert, or update only when the status may move
# (the WHERE clause is decide_status() in SQL: never backwards, terminal is final).
_ORDER_HEAD: Final = (
    "INSERT INTO orders (order_id, run_id, user_id, symbol, side, order_type, quantity, price, "
    "stop_price, time_in_force, status, status_rank, submit_time, event_utc, parent_order_id, "
    "strategy_id, account_id, first_seq, last_seq)"
)
_ORDER_ROW: Final = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_ORDER_TAIL: Final = (
    "ON CONFLICT (order_id) DO UPDATE SET symbol = excluded.symbol, side = excluded.side, "
    "order_type = COALESCE(excluded.order_type, orders.order_type), "
    "quantity = excluded.quantity, price = COALESCE(excluded.price, orders.price), "
    "stop_price = COALESCE(excluded.stop_price, orders.stop_price), "
    "time_in_force = COALESCE(excluded.time_in_force, orders.time_in_force), "
    "status = excluded.status, status_rank = excluded.status_rank, "
    "submit_time = COALESCE(orders.submit_time, excluded.submit_time), "
    "event_utc = excluded.event_utc, "
    "parent_order_id = COALESCE(excluded.parent_order_id, orders.parent_order_id), "
    "strategy_id = COALESCE(excluded.strategy_id, orders.strategy_id), "
    "account_id = COALESCE(excluded.account_id, orders.account_id), "
    f"last_seq = excluded.last_seq WHERE orders.status_rank < {TERMINAL_RANK} "
    "AND excluded.status_rank >= orders.status_rank"
)
_ORDER_UPSERT: Final = f"{_ORDER_HEAD} VALUES {_ORDER_ROW} {_ORDER_TAIL}"
_HISTORY_HEAD: Final = (
    "INSERT INTO order_status_history (order_id, seq, ordinal, status, applied, event_utc)"
)
_HISTORY_ROW: Final = "(?, ?, ?, ?, ?, ?)"
_ORDER_HISTORY: Final = f"{_HISTORY_HEAD} VALUES {_HISTORY_ROW}"


def project_order(
    db: SqlExecutor, fact: Fact, order: Order, batch: ProjectionBatch | None = None
) -> Refusal | None:
    """Upsert the order; its status only moves forward (see :mod:`.order_status`).

    With a ``batch`` the upsert and its history row wait for
    :meth:`ProjectionBatch.flush`; without, both are written now.
    """
    status = normalize_status(opt(order.status))
    rank = status_rank(status)
    submit = order.submit_time
    values = (
        *(order.order_id, fact.run_id, fact.user_id, order.symbol, order.side),
        *(opt(order.order_type), money_text(order.quantity), money_text(order.price)),
        *(money_text(order.stop_price), opt(order.time_in_force), status, rank),
        *(utc_text(submit) if isinstance(submit, str) else None, fact.event_utc),
        *(opt(order.parent_order_id), opt(order.strategy_id), opt(order.account_id)),
        *(fact.seq, fact.seq),
    )
    if batch is not None:
        batch.orders.append(values)
        event = (order.order_id, fact.seq, fact.ordinal, status, rank, fact.event_utc)
        batch.order_events.append(event)
        return None
    applied = int(execute_inline_nulls(db, _ORDER_UPSERT, values).rowcount > 0)
    db.execute(
        _ORDER_HISTORY, (order.order_id, fact.seq, fact.ordinal, status, applied, fact.event_utc)
    )
    return None


# --- executions ---------------------------------------------------------------------

_EXECUTION_INSERT: Final = (
    "INSERT INTO executions (execution_id, order_id, run_id, user_id, symbol, side, quantity, "
    "price, commission, fee, fee_currency, exec_time, strategy_id, account_id, "
    "liquidity_flag, fingerprint, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (execution_id) DO NOTHING"
)
_EXECUTION_PRINT: Final = "SELECT fingerprint FROM executions WHERE execution_id = ?"


def project_execution(db: SqlExecutor, fact: Fact, fill: Execution) -> Refusal | None:
    """Store a fill once; the same ``execution_id`` with other values is refused."""
    exec_time = utc_text_or(fill.exec_time, fact.event_utc)
    values = (
        fill.order_id,
        fact.run_id,
        opt(fill.symbol),
        opt(fill.side),
        fill.quantity,
        fill.price,
        opt(fill.commission),
        opt(fill.fee),
        opt(fill.fee_currency),
        exec_time,
    )
    printed = fingerprint(*values)
    cursor = db.execute(
        _EXECUTION_INSERT,
        (
            *(fill.execution_id, fill.order_id, fact.run_id, fact.user_id, opt(fill.symbol)),
            *(opt(fill.side), money_text(fill.quantity), money_text(fill.price)),
            *(money_text(fill.commission), money_text(fill.fee), opt(fill.fee_currency)),
            *(exec_time, opt(fill.strategy_id), opt(fill.account_id), opt(fill.liquidity_flag)),
            *(printed, fact.seq),
        ),
    )
    if cursor.rowcount:
        return None
    row = db.execute(_EXECUTION_PRINT, (fill.execution_id,)).fetchone()
    if row is not None and row[0] == printed:
        return None  # the same fill again: idempotent
    return Refusal(
        code="EXECUTION_CONFLICT",
        message=f"Execution {fill.execution_id!r} is already stored with different values "
        "(order, run, symbol, side, quantity, price, fees or time): a fill is immutable; "
        "send a correction as a new execution_id.",
        field=f"{fact.path}.execution_id",
    )


# --- OCO groups ---------------------------------------------------------------------

_OCO_UPSERT: Final = (
    "INSERT INTO oco_groups (oco_group_id, run_id, user_id, created_utc, label, "
    "order_ids_json, extra_json, last_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (oco_group_id) DO UPDATE SET label = COALESCE(excluded.label, oco_groups.label), "
    "order_ids_json = excluded.order_ids_json, "
    "extra_json = COALESCE(excluded.extra_json, oco_groups.extra_json), "
    "last_seq = excluded.last_seq"
)


def project_oco_group(db: SqlExecutor, fact: Fact, group: OcoGroup) -> Refusal | None:
    """Upsert an OCO group (its own ``run_id`` when given, else the event's)."""
    run_id = group.run_id if isinstance(group.run_id, str) else fact.run_id
    db.execute(
        _OCO_UPSERT,
        (
            group.oco_group_id,
            run_id,
            fact.user_id,
            utc_text_or(group.created_utc, fact.event_utc),
            opt(group.label),
            json_text(group.order_ids),
            json_text(group.extra_json),
            fact.seq,
        ),
    )
    return None


# --- market data --------------------------------------------------------------------

_SERIES_INSERT: Final = (
    "INSERT INTO series (series_id, symbol, timeframe, run_id, user_id) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (series_id) DO NOTHING"
)
_BAR_UPSERT: Final = (
    "INSERT INTO bars (series_id, ts_utc, symbol, timeframe, run_id, open, high, low, close, "
    "volume, last_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (series_id, ts_utc) DO UPDATE SET open = excluded.open, "
    "high = excluded.high, low = excluded.low, close = excluded.close, "
    "volume = excluded.volume, last_seq = excluded.last_seq"
)


def project_market_data(db: SqlExecutor, fact: Fact, data: MarketData) -> Refusal | None:
    """Upsert the series and its bar at ``bar.ts_utc`` (a later bar replaces it)."""
    series = (data.series_id, data.symbol, data.timeframe, fact.run_id)
    db.execute(_SERIES_INSERT, (*series, fact.user_id))
    bar = data.bar
    db.execute(
        _BAR_UPSERT,
        (
            *(data.series_id, utc_text(bar.ts_utc), data.symbol, data.timeframe, fact.run_id),
            *(money_text(v) for v in (bar.open, bar.high, bar.low, bar.close, bar.volume)),
            fact.seq,
        ),
    )
    return None


# --- accounts and positions ------------------------------------------------------------

_ACCOUNT_UPSERT: Final = (
    "INSERT INTO accounts (run_id, account_id, user_id, currency, balance, equity, margin, "
    "free_margin, unrealized_pnl, realized_pnl, updated_utc, last_seq) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, account_id) DO UPDATE SET "
    "currency = COALESCE(excluded.currency, accounts.currency), balance = excluded.balance, "
    "equity = excluded.equity, margin = excluded.margin, free_margin = excluded.free_margin, "
    "unrealized_pnl = excluded.unrealized_pnl, realized_pnl = excluded.realized_pnl, "
    "updated_utc = excluded.updated_utc, last_seq = excluded.last_seq"
)
_POSITION_UPSERT: Final = (
    "INSERT INTO positions (run_id, account_id, symbol, user_id, side, quantity, avg_price, "
    "unrealized_pnl, realized_pnl, position_id, updated_utc, last_seq) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id, account_id, symbol) DO UPDATE SET side = excluded.side, "
    "quantity = excluded.quantity, avg_price = excluded.avg_price, "
    "unrealized_pnl = excluded.unrealized_pnl, realized_pnl = excluded.realized_pnl, "
    "position_id = COALESCE(excluded.position_id, positions.position_id), "
    "updated_utc = excluded.updated_utc, last_seq = excluded.last_seq"
)


def project_account(db: SqlExecutor, fact: Fact, account: AccountUpdate) -> Refusal | None:
    """Replace the account's snapshot in this run."""
    money = (account.balance, account.equity, account.margin, account.free_margin)
    pnl = (account.unrealized_pnl, account.realized_pnl)
    db.execute(
        _ACCOUNT_UPSERT,
        (
            *(fact.run_id, account.account_id, fact.user_id, opt(account.currency)),
            *(money_text(v) for v in (*money, *pnl)),
            *(utc_text_or(account.updated_utc, fact.event_utc), fact.seq),
        ),
    )
    return None


def project_position(db: SqlExecutor, fact: Fact, position: PositionUpdate) -> Refusal | None:
    """Replace the snapshot of one position (account ``""`` when none is named)."""
    account = position.account_id if isinstance(position.account_id, str) else ""
    amounts = (position.quantity, position.avg_price, position.unrealized_pnl)
    db.execute(
        _POSITION_UPSERT,
        (
            *(fact.run_id, account, position.symbol, fact.user_id, position.side),
            *(money_text(v) for v in (*amounts, position.realized_pnl)),
            *(opt(position.position_id), utc_text_or(position.updated_utc, fact.event_utc)),
            fact.seq,
        ),
    )
    return None
