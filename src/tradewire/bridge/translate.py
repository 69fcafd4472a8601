"""The ingest bridge: committed ingest records in, user events out (pure).

Theory of operation
-------------------
The gateway hands every committed ``ingest`` record, in ``seq`` order, to
:meth:`IngestBridge.translate`. The bridge keeps, per run, the state an
event needs: a :class:`~tradewire.analytics.TradeBook` (for position events),
the orders seen (for the symbol and side of a fill that omits them, and to
tell a new order from an update) and the execution ids applied (a fill
resent under a new ``msg_id`` is applied once). An order is kept as its wire
record until an event or a fill reads it, and only then becomes an
:class:`~tradewire.bridge.events.OrderInfo` (decimals, normalized fields),
the same one it would have been at once: most order records notify nobody.
A run it has not seen since start must first be loaded with
:meth:`IngestBridge.load_run` from the projections *as they were before*
that record (:meth:`unknown_run` says which, or :meth:`translate_loaded`
declines), so a replay after a restart rebuilds the exact same state.

A run that ends is returned as :class:`RunEnded`: the caller computes the
run's metrics with the same code as ``GET /api/runs/{id}/metrics`` and asks
:meth:`run_completed` for BACKTEST_COMPLETED. A heartbeat source that went
silent becomes EVENT_ERROR through :meth:`source_down`.

Event ids are derived from the cause (``ingest:fill:<execution_id>``, ...),
never from a clock, so the ``user_event`` stream's dedup by ``event_id``
makes every cause notify at most once, however often it is replayed.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

import msgspec

from tradewire.analytics import (
    AnalyticsInputError,
    Fill,
    RunMetrics,
    TradeBook,
    fill_from_mapping,
)
from tradewire.bridge.events import (
    OrderInfo,
    RunInfo,
    backtest_completed,
    build_event,
    epoch_ms,
    order_payload,
    position_event,
    strategy_error_payload,
)
from tradewire.bridge.rules import DEFAULT_RULES, BridgeRule
from tradewire.delivery.model import Event, Priority
from tradewire.ingest.heartbeats import HealthChange
from tradewire.ingest.order_status import normalize_status
from tradewire.wire.envelope import Envelope, IngestEvent, LogRecord
from tradewire.wire.frames import EventType
from tradewire.wire.ingest_payloads import (
    BatchIngest,
    Execution,
    Order,
    StrategyEvent,
    Timestamp,
)
from tradewire.wire.payloads import OrderEventPayload

__all__ = [
    "END_EVENTS",
    "IngestBridge",
    "RunEnded",
    "RunSnapshot",
    "Translation",
    "base_order_id",
]

END_EVENTS: Final = frozenset({"run_ended", "run_completed", "run_failed"})
"""``strategy_event`` names that end a run (as in the runs projection)."""
ALERT_LEVELS: Final = frozenset({"ERROR", "CRITICAL", "FATAL"})
_STATUS_EVENTS: Final = {
    "REJECTED": EventType.ORDER_REJECTED,
    "CANCELED": EventType.ORDER_CANCELLED,
    "EXPIRED": EventType.ORDER_EXPIRED,
}
_UUID_LEN: Final = 36
_PLACED: Final = EventType.ORDER_PLACED


def base_order_id(order_id: str) -> str:
    """``<uuid>`` of an exporter order id ``<uuid>-<n>`` (else the id itself).

    The SAP Quantower exporter writes one order row per order event with a
    suffix; its executions reference the bare uuid.
    """
    if len(order_id) > _UUID_LEN and order_id[_UUID_LEN] == "-" and order_id.count("-", 0, 36) == 4:
        return order_id[:_UUID_LEN]
    return order_id


class RunSnapshot:
    """A run as the projections held it before the record being bridged."""

    __slots__ = ("exchange", "fills", "orders")

    def __init__(
        self, fills: list[Fill], orders: Mapping[str, OrderInfo], exchange: str = ""
    ) -> None:
        self.fills = fills
        self.orders = dict(orders)
        self.exchange = exchange


class RunEnded(msgspec.Struct, frozen=True):
    """A run ended (``strategy_event`` ``run_ended`` ...) in record ``seq``."""

    run_id: str
    user_id: str
    event: str
    at: dt.datetime
    seq: int


class Translation(msgspec.Struct):
    """What one record produced."""

    events: list[Event] = msgspec.field(default_factory=list)
    ended: list[RunEnded] = msgspec.field(default_factory=list)


class _Run:
    __slots__ = ("book", "exchange", "fills", "next_seq", "orders", "owner")

    def __init__(self, owner: str, snapshot: RunSnapshot) -> None:
        self.owner = owner
        self.book = TradeBook.rebuild(snapshot.fills)
        self.fills = {f.execution_id for f in snapshot.fills}
        self.next_seq = len(snapshot.fills)
        self.orders: dict[str, OrderInfo | Order] = {}
        for order_id, info in snapshot.orders.items():
            self.orders[order_id] = self.orders[base_order_id(order_id)] = info
        self.exchange = snapshot.exchange


class IngestBridge:
    """Translates committed ingest records of every run into user events."""

    def __init__(
        self, rules: Mapping[EventType, BridgeRule] = DEFAULT_RULES, *, max_runs: int = 256
    ) -> None:
        self.rules = dict(rules)
        self._all_rules = self.rules
        self._quiet_rules = {
            kind: msgspec.structs.replace(rule, enabled=False)
            if rule.priority is Priority.INFORMATIONAL
            else rule
            for kind, rule in self.rules.items()
        }
        self.max_runs = max_runs
        self._runs: OrderedDict[str, _Run] = OrderedDict()

    def unknown_run(self, envelope: Envelope) -> str | None:
        """The run of ``envelope`` that must be :meth:`load_run` first, if any."""
        payload = envelope.payload
        if isinstance(payload, IngestEvent) and payload.run_id not in self._runs:
            return payload.run_id
        return None

    def load_run(self, run_id: str, owner: str, snapshot: RunSnapshot) -> None:
        """Install a run's state (the least recently used run beyond ``max_runs`` goes)."""
        self._runs[run_id] = _Run(owner, snapshot)
        while len(self._runs) > self.max_runs:
            self._runs.popitem(last=False)

    def book(self, run_id: str) -> TradeBook | None:
        """The live trade book of a loaded run."""
        run = self._runs.get(run_id)
        return None if run is None else run.book

    def translate(
        self, seq: int, user_id: str | None, envelope: Envelope, *, informational: bool = True
    ) -> Translation:
        """The user events of one committed record (its run loaded first).

        ``informational=False`` (the owner has no live session) leaves out the
        INFORMATIONAL events, which delivery would drop anyway; the state
        (orders, positions) is updated all the same.
        """
        out = self.translate_loaded(seq, user_id, envelope, informational=informational)
        if out is None:
            run_id = self.unknown_run(envelope)
            raise KeyError(f"run {run_id!r} is not loaded: call load_run first")
        return out

    def translate_loaded(
        self, seq: int, user_id: str | None, envelope: Envelope, *, informational: bool = True
    ) -> Translation | None:
        """:meth:`translate`, or ``None`` (nothing done) when :meth:`unknown_run` must be loaded.

        One call where the caller would ask :meth:`unknown_run`, then translate:
        the pump's common case (the run loaded) costs one run lookup.
        """
        self.rules = self._all_rules if informational else self._quiet_rules
        payload = envelope.payload
        out = Translation()
        if user_id is None:
            return out
        if isinstance(payload, IngestEvent):
            run = self._runs.get(payload.run_id)
            if run is None:
                return None
            self._runs.move_to_end(payload.run_id)
            self._ingest(out, seq, run, payload)
        elif isinstance(payload, LogRecord):
            out.events += self._log(user_id, envelope, payload)
        return out

    def _ingest(self, out: Translation, seq: int, run: _Run, event: IngestEvent) -> None:
        data = event.payload_json
        items = data.events if isinstance(data, BatchIngest) else (data,)
        stamp = event.event_utc  # parsed only when an event needs the time
        for item in items:
            if isinstance(item, Order):
                out.events += self._order(run, item, stamp)
            elif isinstance(item, Execution):
                out.events += self._execution(run, event.run_id, item, stamp.utc)
            elif isinstance(item, StrategyEvent) and item.event in END_EVENTS:
                out.ended.append(RunEnded(event.run_id, run.owner, item.event, stamp.utc, seq))

    # -- orders and fills --------------------------------------------------------------------

    def _order(self, run: _Run, order: Order, stamp: Timestamp) -> list[Event]:
        key = base_order_id(order.order_id)
        status = _order_status(order)
        orders = run.orders
        known = orders.get(key)
        kind = _STATUS_EVENTS.get(status)
        if kind is not None and known is not None and _known_status(known) == status:
            kind = None  # not a new status: notified already
        # Most order records notify nobody (ORDER_PLACED is INFORMATIONAL: quiet while
        # the owner has no live session): build nothing for a disabled rule, and keep
        # the wire order itself (its OrderInfo is built when a fill reads it).
        rules = self.rules
        placed = known is None and rules[_PLACED].enabled
        if not placed and (kind is None or not rules[kind].enabled):
            orders[key] = orders[order.order_id] = order
            return []
        info = orders[key] = orders[order.order_id] = _order_info(order)
        when_ms = epoch_ms(stamp.utc)
        events = [self._order_event(run, order, info, key, _PLACED, when_ms)] if placed else []
        if kind is not None and rules[kind].enabled:
            events.append(self._order_event(run, order, info, key, kind, when_ms))
        return [event for event in events if event is not None]

    def _order_event(
        self,
        run: _Run,
        order: Order,
        info: OrderInfo,
        key: str,
        kind: EventType,
        when_ms: int,
    ) -> Event | None:
        status = info.status
        suffix = "placed" if kind is _PLACED else status.lower()
        error = f"order {suffix}" if kind is EventType.ORDER_REJECTED else ""
        payload = order_payload(
            order.order_id,
            info,
            status=status,
            when_ms=when_ms,
            exchange=run.exchange,
            error=error,
        )
        return self._event(kind, f"ingest:order:{key}:{suffix}", run, payload, when_ms)

    def _execution(
        self, run: _Run, run_id: str, execution: Execution, when: dt.datetime
    ) -> list[Event]:
        if execution.execution_id in run.fills:
            return []  # the same fill again (resent under a new msg_id): applied once
        order = _order_of(run, execution.order_id)
        fill = _fill(execution, order, when, run.next_seq)
        if fill is None:
            return []
        run.fills.add(fill.execution_id)
        run.next_seq += 1
        changes = run.book.apply(fill)
        stamp = epoch_ms(fill.time)
        payload = OrderEventPayload(
            order_id=execution.order_id,
            symbol=fill.symbol,
            side=fill.side.value,
            order_type=order.order_type if order is not None else "",
            quantity=order.quantity if order is not None else None,
            price=order.price if order is not None else None,
            fill_price=fill.price,
            fill_quantity=fill.quantity,
            status="FILLED",
            exchange=run.exchange,
            timestamp=stamp,
            strategy_id=_opt(execution.strategy_id) or (order.strategy_id if order else ""),
        )
        events = [
            self._event(
                EventType.ORDER_FILLED, f"ingest:fill:{fill.execution_id}", run, payload, stamp
            )
        ]
        for change in changes:
            opened = run.book.open_position(change.symbol)
            events.append(
                position_event(self.rules, run.owner, run_id, change, opened, run.exchange)
            )
        return [e for e in events if e is not None]

    def _event(
        self, kind: EventType, event_id: str, run: _Run, payload: Any, stamp: int
    ) -> Event | None:
        return build_event(
            self.rules,
            kind,
            event_id=event_id,
            user_id=run.owner,
            payload=payload,
            timestamp_ms=stamp,
        )

    # -- logs, run completion, health --------------------------------------------------------

    def _log(self, user_id: str, envelope: Envelope, entry: LogRecord) -> list[Event]:
        level = entry.level.upper()
        if level not in ALERT_LEVELS:
            return []
        meta: dict[str, Any] = entry.meta if isinstance(entry.meta, dict) else {}
        strategy = meta.get("strategy_id")
        when = entry.timestamp.utc
        payload = strategy_error_payload(
            strategy_id=strategy if isinstance(strategy, str) else envelope.source,
            name=entry.name,
            level=level,
            message=entry.message,
            details=msgspec.json.encode(meta).decode() if meta else "",
            when=when,
        )
        event = build_event(
            self.rules,
            EventType.STRATEGY_ERROR,
            event_id=f"ingest:{envelope.msg_id}:log",
            user_id=user_id,
            payload=payload,
            timestamp_ms=epoch_ms(when),
        )
        return [] if event is None else [event]

    def run_completed(self, ended: RunEnded, metrics: RunMetrics, info: RunInfo) -> list[Event]:
        """BACKTEST_COMPLETED of an ended run, from its metrics (then the run is forgotten)."""
        self._runs.pop(ended.run_id, None)
        event = backtest_completed(
            self.rules,
            user_id=ended.user_id,
            run_id=ended.run_id,
            metrics=metrics,
            info=info,
            completed_at=ended.at,
        )
        return [] if event is None else [event]

    def source_down(self, change: HealthChange, user_id: str, at: dt.datetime) -> list[Event]:
        """EVENT_ERROR (a free JSON payload) for ``user_id`` when ``change`` is a source going down.

        The id holds the detection time in milliseconds: each outage is its own event.
        """
        if change.state != "down":
            return []
        stamp = epoch_ms(at)
        payload = {
            "code": "CONNECTION_LOST",
            "source": change.source,
            "message": f"{change.source} sent no heartbeat for {change.silent_s:.1f} s "
            f"(cadence {change.cadence_s:.1f} s)",
            "silent_s": round(change.silent_s, 3),
            "cadence_s": round(change.cadence_s, 3),
            "timestamp": stamp,
        }
        event = build_event(
            self.rules,
            EventType.EVENT_ERROR,
            event_id=f"health:{change.source}:down:{stamp}",
            user_id=user_id,
            payload=payload,
            timestamp_ms=stamp,
        )
        return [] if event is None else [event]


def _order_status(order: Order) -> str:
    status = order.status  # (no status, or an empty one, means NEW)
    return normalize_status(status) if isinstance(status, str) else "NEW"


def _known_status(known: OrderInfo | Order) -> str:
    return known.status if isinstance(known, OrderInfo) else _order_status(known)


def _order_of(run: _Run, order_id: str) -> OrderInfo | None:
    """The order a fill names (by its own id, else its exporter uuid)."""
    orders = run.orders
    known = orders.get(order_id)
    if known is None:
        known = orders.get(base_order_id(order_id))
    if known is None or isinstance(known, OrderInfo):
        return known
    info = _order_info(known)
    for key in (base_order_id(known.order_id), known.order_id):
        if orders.get(key) is known:  # kept as built: its next fills read it again
            orders[key] = info
    return info


def _order_info(known: OrderInfo | Order) -> OrderInfo:
    """What the bridge knows of an order: from a snapshot, or built from its last record."""
    if isinstance(known, OrderInfo):
        return known
    return OrderInfo(
        symbol=known.symbol,
        side=known.side.upper(),
        order_type=_opt(known.order_type) or "",
        quantity=Decimal(known.quantity),
        price=_money(known.price),
        strategy_id=_opt(known.strategy_id) or "",
        status=_order_status(known),
    )


def _opt(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _money(value: object) -> Decimal | None:
    return Decimal(value) if isinstance(value, Decimal) else None


def _fill(
    execution: Execution, order: OrderInfo | None, when: dt.datetime, seq: int
) -> Fill | None:
    """The analytics fill of an execution (symbol and side from its order when omitted)."""
    row: dict[str, object] = {
        "execution_id": execution.execution_id,
        "symbol": _opt(execution.symbol) or (order.symbol if order else None),
        "side": _opt(execution.side) or (order.side if order else None),
        "quantity": Decimal(execution.quantity),
        "price": Decimal(execution.price),
        "commission": _money(execution.commission),
        "fee": _money(execution.fee),
        "exec_time": _opt(execution.exec_time) or when,
    }
    try:
        return fill_from_mapping(row, seq=seq)
    except AnalyticsInputError:
        return None  # kept in the projections; nothing a user can be told about it
