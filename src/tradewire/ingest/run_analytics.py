"""A run's trades and metrics, computed from the ingest projections.

Theory of operation
-------------------
:func:`load_run_analysis` reads the run's executions (``ORDER BY seq, rowid``:
arrival order, the rowid breaking ties between the fills of one
``batch_ingest`` record, which share a ``seq``), its bars, and its initial
balance, and feeds them to the pure :mod:`tradewire.analytics` core. A fill
that omits ``symbol`` / ``side`` takes them from its order.

**Initial balance**, first match wins (``None`` otherwise, and then Sharpe,
Sortino and the drawdown fraction are ``None``, see ``analytics.md``):

1. the run instance's ``parameters_json`` key ``initial_balance``,
   ``initial_capital``, ``starting_balance`` or ``initial_equity``;
2. the sum of the run's ``account_update`` balances reported *before its
   first fill* (the accounts table keeps each account's latest balance, so a
   balance reported after trading started is not a starting balance).

:class:`RunAnalyticsCache` keeps one analysis per run keyed by a
:class:`Watermark` (the latest seq of the run's executions, bars, accounts
and instance). When only new executions arrived and the run has no bars,
the cached :class:`~tradewire.analytics.TradeBook` takes them with
``apply`` (incremental, equal to a rebuild); any other change rebuilds.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final, Protocol

import msgspec

from tradewire.analytics import (
    AnalyticsInputError,
    Bar,
    Fill,
    RunMetrics,
    TradeBook,
    bar_from_mapping,
    compute_run_metrics,
    fill_from_mapping,
    to_decimal,
)

__all__ = [
    "BALANCE_PARAMETERS",
    "RunAnalysis",
    "RunAnalyticsCache",
    "RunRow",
    "Watermark",
    "analyse_fills",
    "load_fill_page",
    "load_fills",
    "load_run_analysis",
    "load_run_row",
    "load_watermark",
]

BALANCE_PARAMETERS: Final = (
    "initial_balance",
    "initial_capital",
    "starting_balance",
    "initial_equity",
)
# an exporter order id is "<uuid>-<n>" while its executions reference "<uuid>"
_BY_BASE: Final = (
    "FROM orders b WHERE substr(b.order_id, 1, length(e.order_id) + 1) = e.order_id || '-' LIMIT 1"
)
_FILLS_SQL: Final = (
    "SELECT e.execution_id, COALESCE(e.symbol, o.symbol, "
    f"(SELECT symbol {_BY_BASE})), COALESCE(e.side, o.side, (SELECT side {_BY_BASE})), "
    "e.quantity, e.price, e.commission, e.fee, e.exec_time, e.seq "
    "FROM executions e LEFT JOIN orders o ON o.order_id = e.order_id "
    "WHERE e.run_id = ? AND e.seq > ? AND e.seq < ? ORDER BY e.seq, e.rowid"
)
_BARS_SQL: Final = (
    "SELECT symbol, ts_utc, open, high, low, close FROM bars WHERE run_id = ? ORDER BY ts_utc"
)
_RUN_SQL: Final = (
    "SELECT r.run_id, r.user_id, r.status, r.strategy_id, r.instance_id, r.started_utc, "
    "r.ended_utc, i.instance_name, i.parameters_json, i.symbols_json, i.timeframe, i.venue "
    "FROM runs r LEFT JOIN instances i ON i.instance_id = r.instance_id WHERE r.run_id = ?"
)
_WATERMARK_SQL: Final = (
    "SELECT (SELECT COALESCE(max(seq), 0) FROM executions WHERE run_id = ?), "
    "(SELECT COUNT(*) FROM executions WHERE run_id = ?), "
    "(SELECT COALESCE(max(last_seq), 0) FROM bars WHERE run_id = ?), "
    "(SELECT COALESCE(max(last_seq), 0) FROM accounts WHERE run_id = ?), "
    "(SELECT COALESCE(max(i.last_seq), 0) FROM instances i WHERE i.run_id = ?)"
)
_ACCOUNTS_SQL: Final = "SELECT balance, last_seq FROM accounts WHERE run_id = ?"
_NO_END: Final = 1 << 62


class QueryStore(Protocol):
    """The read side of the store this module needs."""

    async def query(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...


class RunRow(msgspec.Struct, frozen=True):
    """A run and its instance, as the projections hold them."""

    run_id: str
    user_id: str | None
    status: str
    strategy_id: str | None
    instance_id: str | None
    started_utc: str | None
    ended_utc: str | None
    instance_name: str | None
    parameters: dict[str, Any]
    symbols: list[str]
    timeframe: str | None
    venue: str | None


class Watermark(msgspec.Struct, frozen=True):
    """The latest seq of everything a run's analysis depends on."""

    executions: int
    fills: int
    bars: int
    accounts: int
    instance: int


class RunAnalysis(msgspec.Struct):
    """A run's trade book and metrics at ``watermark``."""

    run: RunRow
    book: TradeBook
    bars: list[Bar]
    initial_balance: Decimal | None
    metrics: RunMetrics
    watermark: Watermark


async def load_run_row(store: QueryStore, run_id: str) -> RunRow | None:
    """The run ``run_id`` (``None`` when no message named it)."""
    rows = await store.query(_RUN_SQL, (run_id,))
    if not rows:
        return None
    row = rows[0]
    params = _json_or(row[8], {})
    symbols = _json_or(row[9], [])
    return RunRow(
        run_id=row[0],
        user_id=row[1],
        status=row[2],
        strategy_id=row[3],
        instance_id=row[4],
        started_utc=row[5],
        ended_utc=row[6],
        instance_name=row[7],
        parameters=params if isinstance(params, dict) else {},
        symbols=[str(s) for s in symbols] if isinstance(symbols, list) else [],
        timeframe=row[10],
        venue=row[11],
    )


async def load_watermark(store: QueryStore, run_id: str) -> Watermark:
    """The run's current :class:`Watermark`."""
    rows = await store.query(_WATERMARK_SQL, (run_id,) * 5)
    return Watermark(*(int(v) for v in rows[0]))


async def load_fills(
    store: QueryStore, run_id: str, *, after_seq: int = 0, before_seq: int = _NO_END, first: int = 0
) -> list[Fill]:
    """The run's fills with ``after_seq < seq < before_seq`` in arrival order.

    ``Fill.seq`` counts from ``first`` (the arrival index within the run).
    """
    rows = await store.query(_FILLS_SQL, (run_id, after_seq, before_seq))
    return _fill_rows(rows, first)


_FILL_KEYS: Final = (
    "execution_id", "symbol", "side", "quantity", "price", "commission", "fee", "exec_time"
)  # fmt: skip


def _fill_rows(rows: list[tuple[Any, ...]], first: int) -> list[Fill]:
    """Fills of readable rows; a fill whose symbol or side is nowhere to be found is left out."""
    out: list[Fill] = []
    for row in rows:
        try:
            out.append(
                fill_from_mapping(dict(zip(_FILL_KEYS, row, strict=False)), seq=first + len(out))
            )
        except AnalyticsInputError:
            continue
    return out


async def _load_bars(store: QueryStore, run_id: str) -> list[Bar]:
    rows = await store.query(_BARS_SQL, (run_id,))
    keys = ("symbol", "ts_utc", "open", "high", "low", "close")
    return [bar_from_mapping(dict(zip(keys, row, strict=True))) for row in rows]


async def _initial_balance(
    store: QueryStore, run: RunRow, first_fill_seq: int | None
) -> Decimal | None:
    for name in BALANCE_PARAMETERS:
        value = run.parameters.get(name)
        if value is not None and not isinstance(value, bool):
            return to_decimal(value, name)
    rows = await store.query(_ACCOUNTS_SQL, (run.run_id,))
    early = [
        to_decimal(balance, "balance")
        for balance, seq in rows
        if balance is not None and (first_fill_seq is None or seq < first_fill_seq)
    ]
    return sum(early, Decimal(0)) if early else None


async def load_run_analysis(
    store: QueryStore, run: RunRow, cached: RunAnalysis | None = None
) -> RunAnalysis:
    """The run's analysis now; from ``cached`` incrementally when only fills were added."""
    mark = await load_watermark(store, run.run_id)
    if cached is not None and cached.watermark == mark and cached.run == run:
        return cached
    if cached is not None and _only_new_fills(cached, mark) and cached.run == run:
        old = cached.watermark
        fresh = await load_fills(store, run.run_id, after_seq=old.executions, first=old.fills)
        if len(fresh) + old.fills == mark.fills:
            for fill in fresh:
                cached.book.apply(fill)
            cached.metrics = _metrics(cached.book, cached.bars, cached.initial_balance)
            cached.watermark = mark
            return cached
    return await analyse_fills(store, run, await load_fills(store, run.run_id), mark)


async def analyse_fills(
    store: QueryStore, run: RunRow, fills: list[Fill], mark: Watermark | None = None
) -> RunAnalysis:
    """The analysis of ``run`` from its already loaded ``fills`` (all of them, in order)."""
    mark = mark or await load_watermark(store, run.run_id)
    bars = await _load_bars(store, run.run_id)
    first_seq = await _first_fill_seq(store, run.run_id) if fills else None
    balance = await _initial_balance(store, run, first_seq)
    book = TradeBook.rebuild(fills, bars)
    return RunAnalysis(run, book, bars, balance, _metrics(book, bars, balance), mark)


async def load_fill_page(
    store: QueryStore, run_id: str, *, offset: int, limit: int
) -> tuple[list[Fill], int]:
    """Up to ``limit`` fills from arrival index ``offset``, and how many rows were read."""
    sql = _FILLS_SQL + " LIMIT ? OFFSET ?"
    rows = await store.query(sql, (run_id, 0, _NO_END, limit, offset))
    return _fill_rows(rows, offset), len(rows)


def _only_new_fills(cached: RunAnalysis, mark: Watermark) -> bool:
    old = cached.watermark
    return (
        not cached.bars
        and mark.bars == old.bars
        and mark.accounts == old.accounts
        and mark.instance == old.instance
        and mark.executions > old.executions
    )


async def _first_fill_seq(store: QueryStore, run_id: str) -> int | None:
    rows = await store.query("SELECT min(seq) FROM executions WHERE run_id = ?", (run_id,))
    return None if not rows or rows[0][0] is None else int(rows[0][0])


def _metrics(book: TradeBook, bars: list[Bar], balance: Decimal | None) -> RunMetrics:
    return compute_run_metrics(book.trades, initial_balance=balance, bars=bars)


def _json_or(text: object, default: object) -> object:
    if not isinstance(text, str):
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


class RunAnalyticsCache:
    """The latest :class:`RunAnalysis` of the most recently used runs (bounded, LRU)."""

    def __init__(self, store: QueryStore, *, capacity: int = 64) -> None:
        self.store = store
        self.capacity = capacity
        self._cache: OrderedDict[str, RunAnalysis] = OrderedDict()
        self.rebuilds = 0
        self.hits = 0

    async def analysis(self, run: RunRow) -> RunAnalysis:
        """The run's analysis now (recomputed only when its watermark moved)."""
        cached = self._cache.get(run.run_id)
        result = await load_run_analysis(self.store, run, cached)
        if result is cached:
            self.hits += 1
        else:
            self.rebuilds += 1
        self._cache[run.run_id] = result
        self._cache.move_to_end(run.run_id)
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return result
