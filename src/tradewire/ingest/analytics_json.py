"""JSON documents of a run's analysis (REST and ``tradewire report``): money as decimal strings.

Times are ISO-8601 UTC text, durations are seconds (float), ratios are JSON
numbers or ``null`` when undefined.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from tradewire.analytics import Leg, OpenPosition, RunMetrics, Trade
from tradewire.ingest.run_analytics import RunAnalysis

__all__ = [
    "drawdown_series",
    "equity_document",
    "metrics_document",
    "money",
    "trades_document",
]


def money(value: Decimal | None) -> str | None:
    """A decimal as plain text (no exponent), ``None`` kept."""
    if value is None:
        return None
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _time(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _leg(leg: Leg) -> dict[str, Any]:
    return {
        "side": leg.side.value,
        "open_fill_id": leg.open_fill_id,
        "close_fill_id": leg.close_fill_id,
        "quantity": money(leg.quantity),
        "entry_price": money(leg.entry_price),
        "exit_price": money(leg.exit_price),
        "entry_time": _time(leg.entry_time),
        "exit_time": _time(leg.exit_time),
        "gross_pnl": money(leg.gross_pnl),
        "commission": money(leg.commission),
        "net_pnl": money(leg.net_pnl),
    }


def _trade(trade: Trade) -> dict[str, Any]:
    return {
        "symbol": trade.symbol,
        "side": trade.side.value,
        "entry_time": _time(trade.entry_time),
        "exit_time": _time(trade.exit_time),
        "entry_price": money(trade.entry_price),
        "exit_price": money(trade.exit_price),
        "peak_quantity": money(trade.peak_quantity),
        "total_quantity": money(trade.total_quantity),
        "gross_pnl": money(trade.gross_pnl),
        "commission": money(trade.commission),
        "net_pnl": money(trade.net_pnl),
        "duration_s": trade.duration.total_seconds(),
        "mae": money(trade.mae),
        "mfe": money(trade.mfe),
        "opened_by": trade.opened_by,
        "closed_by": trade.closed_by,
        "legs": [_leg(leg) for leg in trade.legs],
    }


def _open(position: OpenPosition) -> dict[str, Any]:
    return {
        "symbol": position.symbol,
        "side": position.side.value,
        "quantity": money(position.quantity),
        "average_price": money(position.average_price),
        "opened_at": _time(position.opened_at),
        "opened_by": position.opened_by,
        "peak_quantity": money(position.peak_quantity),
        "last_price": money(position.last_price),
        "last_price_time": _time(position.last_price_time),
        "unrealized_pnl": money(position.unrealized_pnl),
        "open_commission": money(position.open_commission),
        "realized_gross": money(position.realized_gross),
        "realized_commission": money(position.realized_commission),
        "net_pnl": money(position.net_pnl),
    }


def trades_document(analysis: RunAnalysis) -> dict[str, Any]:
    """``GET /api/runs/{id}/trades``: closed trades with legs, open positions, input counts."""
    book = analysis.book
    counters = book.counters
    return {
        "run_id": analysis.run.run_id,
        "trades": [_trade(t) for t in book.trades],
        "open_positions": [_open(p) for p in book.open_positions()],
        "counters": {
            "fills": counters.fills,
            "bars": counters.bars,
            "dust_fills": counters.dust_fills,
            "snaps": counters.snaps,
            "time_regressions": counters.time_regressions,
        },
    }


def metrics_document(analysis: RunAnalysis) -> dict[str, Any]:
    """``GET /api/runs/{id}/metrics``: every :class:`RunMetrics` field but the curve."""
    m: RunMetrics = analysis.metrics
    out: dict[str, Any] = {"run_id": analysis.run.run_id, "status": analysis.run.status}
    for name in m.__struct_fields__:
        if name == "equity_curve":
            continue
        value = getattr(m, name)
        if isinstance(value, Decimal):
            value = money(value)
        elif isinstance(value, dt.datetime):
            value = _time(value)
        elif isinstance(value, dt.timedelta):
            value = value.total_seconds()
        out[name] = value
    out["max_drawdown_duration_s"] = out.pop("max_drawdown_duration")
    out["open_positions"] = len(analysis.book.open_positions())
    return out


def drawdown_series(metrics: RunMetrics) -> list[tuple[dt.datetime, Decimal, Decimal]]:
    """``(time, equity, drawdown)`` per equity point; drawdown = running peak - equity (>= 0)."""
    out: list[tuple[dt.datetime, Decimal, Decimal]] = []
    peak: Decimal | None = None
    for point in metrics.equity_curve:
        peak = point.equity if peak is None or point.equity > peak else peak
        out.append((point.time, point.equity, peak - point.equity))
    return out


def equity_document(analysis: RunAnalysis) -> dict[str, Any]:
    """``GET /api/runs/{id}/equity``: the equity curve and its drawdown."""
    points = []
    for time, equity, drawdown in drawdown_series(analysis.metrics):
        peak = equity + drawdown
        fraction = float(drawdown / peak) if peak > 0 else None
        points.append(
            {
                "time": _time(time),
                "equity": money(equity),
                "drawdown": money(drawdown),
                "drawdown_fraction": fraction,
            }
        )
    return {
        "run_id": analysis.run.run_id,
        "initial_balance": money(analysis.initial_balance),
        "points": points,
    }
