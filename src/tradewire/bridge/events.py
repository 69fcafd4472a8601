"""Pure builders: one ingest occurrence -> one :class:`~tradewire.delivery.model.Event`.

Every event id is derived from what caused it (see ``docs/concepts/bridge.md``),
so a replayed or resent cause yields the same id and the ``user_event``
stream's dedup makes it notify once. Money goes out as decimal strings
(:func:`~tradewire.wire.payloads.encode_payload`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Final

import msgspec

from tradewire.analytics import OpenPosition, RunMetrics, Trade, TradeEvent, TradeEventKind
from tradewire.bridge.rules import BridgeRule
from tradewire.delivery.model import Event
from tradewire.wire.frames import EventType
from tradewire.wire.payloads import (
    BacktestEventPayload,
    EventPayload,
    OrderEventPayload,
    Payload,
    PositionEventPayload,
    StrategyEventPayload,
    encode_payload,
)

__all__ = [
    "OrderInfo",
    "RunInfo",
    "backtest_completed",
    "build_event",
    "epoch_ms",
    "order_payload",
    "position_event",
    "strategy_error_payload",
]

_PLACES: Final = Decimal("1e-12")


def epoch_ms(when: dt.datetime | None) -> int:
    """Unix milliseconds of an aware time (0 for ``None``)."""
    return 0 if when is None else int(when.timestamp() * 1000)


class OrderInfo:
    """What the bridge remembers of an order (to describe its fills)."""

    __slots__ = ("order_type", "price", "quantity", "side", "status", "strategy_id", "symbol")

    def __init__(
        self,
        *,
        symbol: str,
        side: str,
        order_type: str = "",
        quantity: Decimal | None = None,
        price: Decimal | None = None,
        strategy_id: str = "",
        status: str = "NEW",
    ) -> None:
        self.symbol = symbol
        self.side = side
        self.order_type = order_type
        self.quantity = quantity
        self.price = price
        self.strategy_id = strategy_id
        self.status = status


class RunInfo:
    """Descriptive fields of a run for BACKTEST_COMPLETED (empty when unknown)."""

    __slots__ = ("strategy_id", "strategy_name", "symbol", "timeframe")

    def __init__(
        self,
        *,
        strategy_id: str = "",
        strategy_name: str = "",
        symbol: str = "",
        timeframe: str = "",
    ) -> None:
        self.strategy_id = strategy_id
        self.strategy_name = strategy_name
        self.symbol = symbol
        self.timeframe = timeframe


def build_event(
    rules: Mapping[EventType, BridgeRule],
    kind: EventType,
    *,
    event_id: str,
    user_id: str,
    payload: Payload,
    timestamp_ms: int,
) -> Event | None:
    """The event under ``kind``'s rule, or ``None`` when the rule disables it."""
    rule = rules[kind]
    if not rule.enabled:
        return None
    return Event(
        event_id=event_id,
        user_id=user_id,
        event_type=int(kind),
        priority=rule.priority,
        channels=rule.channels,
        payload=_encode(payload),
        timestamp_ms=timestamp_ms,
    )


def position_event(
    rules: Mapping[EventType, BridgeRule],
    user_id: str,
    run_id: str,
    change: TradeEvent,
    opened: OpenPosition | None,
    exchange: str,
) -> Event | None:
    """POSITION_OPENED / POSITION_CLOSED for one trade event (``None`` for a change)."""
    stamp = epoch_ms(change.time)
    position_id = f"{run_id}:{change.symbol}:{change.execution_id}"
    if change.kind is TradeEventKind.POSITION_OPENED and opened is not None:
        payload = PositionEventPayload(
            position_id=position_id,
            symbol=change.symbol,
            side=opened.side.value,
            size=abs(change.position),
            entry_price=_q(opened.average_price),
            current_price=opened.last_price,
            unrealized_pnl=_q(opened.unrealized_pnl),
            exchange=exchange,
            timestamp=stamp,
        )
        kind, what = EventType.POSITION_OPENED, "opened"
    elif change.kind is TradeEventKind.POSITION_CLOSED and change.trade is not None:
        payload = _closed_payload(change.trade, exchange, stamp)
        kind, what = EventType.POSITION_CLOSED, "closed"
    else:
        return None
    event_id = f"ingest:pos:{change.execution_id}:{change.symbol}:{what}"
    return build_event(
        rules, kind, event_id=event_id, user_id=user_id, payload=payload, timestamp_ms=stamp
    )


def _closed_payload(trade: Trade, exchange: str, stamp: int) -> PositionEventPayload:
    return PositionEventPayload(
        position_id=f"{trade.symbol}:{trade.opened_by}",
        symbol=trade.symbol,
        side=trade.side.value,
        size=trade.total_quantity,
        entry_price=_q(trade.entry_price),
        current_price=_q(trade.exit_price),
        unrealized_pnl=Decimal(0),
        realized_pnl=_q(trade.net_pnl),
        exchange=exchange,
        timestamp=stamp,
    )


def backtest_completed(
    rules: Mapping[EventType, BridgeRule],
    *,
    user_id: str,
    run_id: str,
    metrics: RunMetrics,
    info: RunInfo,
    completed_at: dt.datetime,
) -> Event | None:
    """BACKTEST_COMPLETED with every field filled from the run's metrics."""
    payload = BacktestEventPayload(
        backtest_id=run_id,
        strategy_id=info.strategy_id,
        strategy_name=info.strategy_name or info.strategy_id,
        symbol=info.symbol,
        timeframe=info.timeframe,
        start_time=epoch_ms(metrics.start),
        end_time=epoch_ms(metrics.end),
        total_trades=metrics.total_trades,
        winning_trades=metrics.winning_trades,
        losing_trades=metrics.losing_trades,
        total_pnl=metrics.net_pnl,
        win_rate=_ratio(metrics.win_rate),
        sharpe_ratio=_ratio(metrics.sharpe),
        max_drawdown=metrics.max_drawdown,
        results_path=f"/api/runs/{run_id}/metrics",
        completed_at=epoch_ms(completed_at),
    )
    return build_event(
        rules,
        EventType.BACKTEST_COMPLETED,
        event_id=f"ingest:run:{run_id}:completed",
        user_id=user_id,
        payload=payload,
        timestamp_ms=epoch_ms(completed_at),
    )


def strategy_error_payload(
    *, strategy_id: str, name: str, level: str, message: str, details: str, when: dt.datetime
) -> StrategyEventPayload:
    """The STRATEGY_ERROR payload of an ERROR / CRITICAL log record."""
    return StrategyEventPayload(
        strategy_id=strategy_id,
        strategy_name=name,
        log_level=level,
        message=message,
        details=details,
        timestamp=epoch_ms(when),
    )


def order_payload(
    order_id: str, info: OrderInfo, *, status: str, when_ms: int, exchange: str, error: str = ""
) -> OrderEventPayload:
    """An order's payload (no fill fields)."""
    return OrderEventPayload(
        order_id=order_id,
        symbol=info.symbol,
        side=info.side,
        order_type=info.order_type,
        quantity=info.quantity,
        price=info.price,
        status=status,
        exchange=exchange,
        timestamp=when_ms,
        strategy_id=info.strategy_id,
        error_message=error,
    )


_ENCODER: Final = msgspec.json.Encoder()
_FIELDS: dict[type[EventPayload], tuple[tuple[str, str, object], ...]] = {}


def _encode(payload: Payload) -> bytes:
    """:func:`~tradewire.wire.payloads.encode_payload`, with the field list computed once.

    (``msgspec.structs.fields`` evaluates the annotations on every call: 300 us
    per event, more than the rest of the bridge.)
    """
    if isinstance(payload, dict):
        return encode_payload(payload)
    kind = type(payload)
    fields = _FIELDS.get(kind)
    if fields is None:
        fields = _FIELDS[kind] = tuple(
            (f.name, f.encode_name, f.default)
            for f in msgspec.structs.fields(kind)
            if f.name != "extras"
        )
    document = {
        wire: value
        for name, wire, default in fields
        if (value := getattr(payload, name)) != default
    }
    document.update(payload.extras)
    return _ENCODER.encode(document)


def _q(value: Decimal) -> Decimal:
    """A derived price or PnL rounded to 12 places (a quotient may carry 28 digits)."""
    if value.adjusted() >= 16:
        return value
    return Decimal(format(value.quantize(_PLACES).normalize(), "f"))


def _ratio(value: float | None) -> Decimal | None:
    """A float ratio as a decimal (shortest repr), ``None`` when undefined."""
    return None if value is None else Decimal(repr(value))
