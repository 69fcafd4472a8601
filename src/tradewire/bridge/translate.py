"""The ingest bridge: committed ingest records in, user events out (pure).

Theory of operation
-------------------
The gateway hands every committed ``ingest`` record, in ``seq`` order, to
:meth:`IngestBridge.translate`. The bridge keeps, per run, the state an
event needs: a :class:`~tradewire.analytics.TradeBook` (for position events),
the orders seen (for the symbol and side of a fill that omits them, and to
tell a new order from an update) and the execution ids applied (a fill
resent under a new ``msg_id`` is applied once). A run it has not seen since
start must first be loaded with :meth:`IngestBridge.load_run` from the
projections *as they were before* that record (:meth:`unknown_run` says
which), so a replay after a restart rebuilds the exact same state.

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
    WireModel,
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
        self.orders: dict[str, OrderInfo] = {}
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
        self.rules = self._all_rules if informational else self._quiet_rules
        out = Translation()
        payload = envelope.payload
        if user_id is None:
            return out
        if isinstance(payload, LogRecord):
            out.events += self._log(user_id, envelope, payload)
        elif isinstance(payload, IngestEvent):
            run = self._runs.get(payload.run_id)
            if run is None:
                raise KeyError(f"run {payload.run_id!r} is not loaded: call load_run first")
            self._runs.move_to_end(payload.run_id)
            self._ingest(out, seq, run, payload)
        return out

    def _ingest(self, out: Translation, seq: int, run: _Run, event: IngestEvent) -> None:
        data = event.payload_json
        items: list[WireModel] = list(data.events) if isinstance(data, BatchIngest) else [data]
        when = event.event_utc.utc
        for item in items:
            if isinstance(item, Order):
                out.events += self._order(run, item, when)
            elif isinstance(item, Execution):
                out.events += self._execution(run, event.run_id, item, when)
            elif isinstance(item, StrategyEvent) and item.event in END_EVENTS:
                out.ended.append(RunEnded(event.run_id, run.owner, item.event, when, seq))

    # -- orders and fills --------------------------------------------------------------------

    def _order(self, run: _Run, order: Order, when: dt.datetime) -> list[Event]:
        key = base_order_id(order.order_id)
        status = normalize_status(_opt(order.status))
        known = run.orders.get(key)
        info = OrderInfo(
            symbol=order.symbol,
            side=order.side.upper(),
            order_type=_opt(order.order_type) or "",
            quantity=Decimal(order.quantity),
            price=_money(order.price),
            strategy_id=_opt(order.strategy_id) or "",
            status=status,
        )
        run.orders[key] = run.orders[order.order_id] = info
        kinds: list[tuple[EventType, str]] = []
        if known is None:
            kinds.append((EventType.ORDER_PLACED, "placed"))
        kind = _STATUS_EVENTS.get(status)
        if kind is not None and (known is None or known.status != status):
            kinds.append((kind, status.lower()))
        # Most order records notify nobody (ORDER_PLACED is INFORMATIONAL: quiet while
        # the owner has no live session): build nothing for a disabled rule.
        rules = self.rules
        events: list[Event] = []
        for kind, suffix in kinds:
            if not rules[kind].enabled:
                continue
            stamp = epoch_ms(when)
            error = f"order {suffix}" if kind is EventType.ORDER_REJECTED else ""
            payload = order_payload(
                order.order_id,
                info,
                status=status,
                when_ms=stamp,
                exchange=run.exchange,
                error=error,
            )
            event = self._event(kind, f"ingest:order:{key}:{suffix}", run, payload, stamp)
            if event is not None:
                events.append(event)
        return events

    def _execution(
        self, run: _Run, run_id: str, execution: Execution, when: dt.datetime
    ) -> list[Event]:
        if execution.execution_id in run.fills:
            return []  # the same fill again (resent under a new msg_id): applied once
        order = run.orders.get(execution.order_id) or run.orders.get(
            base_order_id(execution.order_id)
        )
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
