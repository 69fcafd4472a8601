"""Equity-curve risk measures: drawdown, daily returns, Sharpe and Sortino.

Pure functions over an equity curve (points at trade exits, in time order);
the formulas are stated in :mod:`tradewire.analytics.metrics`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Final

import msgspec

__all__ = ["Drawdown", "EquityPoint", "daily_returns", "max_drawdown", "sharpe", "sortino"]

_ZERO: Final = Decimal(0)
_DAY: Final = dt.timedelta(days=1)


class EquityPoint(msgspec.Struct, frozen=True, gc=False):
    """Equity (initial balance + cumulative net PnL) at ``time``."""

    time: dt.datetime
    equity: Decimal


class Drawdown(msgspec.Struct, frozen=True):
    """The largest fall of equity from a running peak."""

    money: Decimal
    fraction: float | None
    duration: dt.timedelta


def max_drawdown(curve: Sequence[EquityPoint], end: dt.datetime | None = None) -> Drawdown:
    """Largest drawdown in money (with its duration) and largest as a fraction of the peak.

    The duration runs from the peak to the first point back at or above it,
    or to ``end`` (default: the last point) when equity never recovered. The fraction is the largest
    ``(peak - equity) / peak`` over points whose running peak is > 0, ``None``
    when there is none; it may come from another drawdown than the money one.
    """
    if not curve:
        return Drawdown(_ZERO, None, dt.timedelta(0))
    peak, peak_at = curve[0].equity, 0
    worst, worst_peak_at, fraction = _ZERO, 0, None
    for index, point in enumerate(curve):
        if point.equity > peak:
            peak, peak_at = point.equity, index
        fall = peak - point.equity
        if fall > worst:
            worst, worst_peak_at = fall, peak_at
        if peak > _ZERO:
            ratio = float(fall / peak)
            fraction = ratio if fraction is None else max(fraction, ratio)
    started = curve[worst_peak_at]
    recovered = next(
        (p.time for p in curve[worst_peak_at + 1 :] if p.equity >= started.equity),
        curve[-1].time if end is None else max(end, curve[-1].time),
    )
    duration = recovered - started.time if worst else dt.timedelta(0)
    return Drawdown(worst, fraction, duration)


def daily_returns(
    curve: Sequence[EquityPoint], start: dt.datetime, end: dt.datetime
) -> list[float] | None:
    """Simple returns of end-of-UTC-day equity, one per calendar day of ``[start, end]``.

    ``curve[0]`` is the initial balance at ``start``; days without an exit
    carry equity forward (a 0 return). ``None`` when equity at the start of a
    day is <= 0 (a return is then undefined).
    """
    day = start.astimezone(dt.UTC).date()
    last_day = end.astimezone(dt.UTC).date()
    equity = curve[0].equity
    returns: list[float] = []
    index = 1
    while day <= last_day:
        before = equity
        while index < len(curve) and curve[index].time.date() <= day:
            equity = curve[index].equity
            index += 1
        if before <= _ZERO:
            return None
        returns.append(float(equity / before - 1))
        day += _DAY
    return returns


def sharpe(returns: Sequence[float], periods_per_year: int) -> float | None:
    """``mean / stdev(ddof=1) * sqrt(periods_per_year)``.

    ``None`` under 2 returns or when all are equal (stdev 0: the float mean of
    equal values can miss them by a bit, which must not give a huge ratio).
    """
    if len(returns) < 2 or max(returns) == min(returns):
        return None
    mean = math.fsum(returns) / len(returns)
    variance = math.fsum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    return mean / math.sqrt(variance) * math.sqrt(periods_per_year)


def sortino(returns: Sequence[float], periods_per_year: int) -> float | None:
    """``mean / downside deviation * sqrt(periods_per_year)``.

    Downside deviation: ``sqrt(mean(min(r, 0) ** 2))`` over all returns
    (target 0). ``None`` under 2 returns or with no negative return.
    """
    if len(returns) < 2:
        return None
    downside = math.fsum(min(r, 0.0) ** 2 for r in returns) / len(returns)
    if downside <= 0.0:
        return None
    mean = math.fsum(returns) / len(returns)
    return mean / math.sqrt(downside) * math.sqrt(periods_per_year)
