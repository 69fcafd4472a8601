"""Run metrics from closed trades.

Theory of operation
-------------------
Every trade statistic is on **net** PnL (after commissions): a trade wins
when its net PnL is > 0, loses when < 0, and is breakeven at exactly 0.
``gross_profit`` is the sum of the winners' net PnL, ``gross_loss`` the sum
of the losers' (<= 0). ``profit_factor = gross_profit / -gross_loss`` and is
``None`` when there is no loss (it would be infinite, or 0/0).
``expectancy`` is the mean net PnL per trade. A breakeven trade ends both a
winning and a losing streak.

The **equity curve** starts at ``(start, initial_balance or 0)`` and has one
point per trade at its exit (trades taken in exit-time order, ties in the
given order), at the cumulative net PnL. **Max drawdown** is the largest
``peak - equity`` over it, in money; its duration runs from that peak to the
first point back at the peak, or to the end of the period. The drawdown
fraction is the largest ``(peak - equity) / peak`` where the running peak is
> 0 (always, when a positive initial balance is given; ``None`` when the peak
never rises above 0).

**Sharpe and Sortino** use *daily* simple returns: equity at the end of each
UTC calendar day of the period (days without exits repeat the previous
equity), divided by the previous day's, minus 1; the first day is against the
initial balance. They need ``initial_balance`` (a return needs a capital
base) and are ``None`` without it. ``sharpe = mean / stdev(ddof=1) *
sqrt(N)``, ``sortino = mean / sqrt(mean(min(r, 0)^2)) * sqrt(N)``, with a
risk-free rate and target of 0 and ``N = periods_per_year = 365`` by
default: the series has every calendar day, and crypto markets trade all of
them (pass 252 for a series you consider trading days only). Both are
``None`` with under two days, and Sharpe with zero variance, Sortino with no
losing day.

The **period** is the given ``period``, widened to cover the trades and the
bars; without either it is the first entry to the last exit. **Exposure** is
the time covered by the union of the trades' ``[entry, exit]`` intervals (any
symbol) over the period's length, ``None`` for an empty period.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Final

import msgspec

from tradewire.analytics._risk import (
    EquityPoint,
    daily_returns,
    max_drawdown,
    sharpe,
    sortino,
)
from tradewire.analytics.fills import Bar
from tradewire.analytics.trades import Trade

__all__ = ["EquityPoint", "RunMetrics", "compute_run_metrics"]

_ZERO: Final = Decimal(0)


class RunMetrics(msgspec.Struct, frozen=True):
    """Performance of a run's closed trades; see the module docstring for every formula."""

    total_trades: int
    winning_trades: int
    losing_trades: int
    breakeven_trades: int
    win_rate: float | None
    gross_profit: Decimal
    gross_loss: Decimal
    profit_factor: float | None
    expectancy: Decimal | None
    average_win: Decimal | None
    average_loss: Decimal | None
    largest_win: Decimal | None
    largest_loss: Decimal | None
    max_consecutive_wins: int
    max_consecutive_losses: int
    gross_pnl: Decimal
    net_pnl: Decimal
    total_fees: Decimal
    initial_balance: Decimal | None
    equity_curve: tuple[EquityPoint, ...]
    max_drawdown: Decimal
    max_drawdown_fraction: float | None
    max_drawdown_duration: dt.timedelta
    sharpe: float | None
    sortino: float | None
    periods_per_year: int
    exposure: float | None
    start: dt.datetime | None
    end: dt.datetime | None


def compute_run_metrics(
    trades: Iterable[Trade],
    *,
    initial_balance: Decimal | None = None,
    period: tuple[dt.datetime, dt.datetime] | None = None,
    bars: Iterable[Bar] = (),
    periods_per_year: int = 365,
) -> RunMetrics:
    """:class:`RunMetrics` of ``trades``; see the module docstring."""
    ordered = sorted(trades, key=lambda t: t.exit_time)
    start, end = _period(ordered, period, bars)
    nets = [t.net_pnl for t in ordered]
    wins = [n for n in nets if n > _ZERO]
    losses = [n for n in nets if n < _ZERO]
    gross_profit, gross_loss = sum(wins, _ZERO), sum(losses, _ZERO)
    curve = _equity_curve(ordered, initial_balance, start)
    drawdown = max_drawdown(curve, end)
    returns = _returns(curve, initial_balance, start, end)
    streak_wins, streak_losses = _streaks(nets)
    return RunMetrics(
        total_trades=len(nets),
        winning_trades=len(wins),
        losing_trades=len(losses),
        breakeven_trades=len(nets) - len(wins) - len(losses),
        win_rate=len(wins) / len(nets) if nets else None,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=float(gross_profit / -gross_loss) if losses else None,
        expectancy=sum(nets, _ZERO) / len(nets) if nets else None,
        average_win=gross_profit / len(wins) if wins else None,
        average_loss=gross_loss / len(losses) if losses else None,
        largest_win=max(wins) if wins else None,
        largest_loss=min(losses) if losses else None,
        max_consecutive_wins=streak_wins,
        max_consecutive_losses=streak_losses,
        gross_pnl=sum((t.gross_pnl for t in ordered), _ZERO),
        net_pnl=sum(nets, _ZERO),
        total_fees=sum((t.commission for t in ordered), _ZERO),
        initial_balance=initial_balance,
        equity_curve=tuple(curve),
        max_drawdown=drawdown.money,
        max_drawdown_fraction=drawdown.fraction,
        max_drawdown_duration=drawdown.duration,
        sharpe=None if returns is None else sharpe(returns, periods_per_year),
        sortino=None if returns is None else sortino(returns, periods_per_year),
        periods_per_year=periods_per_year,
        exposure=_exposure(ordered, start, end),
        start=start,
        end=end,
    )


def _period(
    trades: Sequence[Trade],
    period: tuple[dt.datetime, dt.datetime] | None,
    bars: Iterable[Bar],
) -> tuple[dt.datetime | None, dt.datetime | None]:
    times = [t.entry_time for t in trades] + [t.exit_time for t in trades]
    times += [bar.ts for bar in bars]
    if period is not None:
        times += list(period)
    if not times:
        return None, None
    return min(times), max(times)


def _equity_curve(
    trades: Sequence[Trade], initial_balance: Decimal | None, start: dt.datetime | None
) -> list[EquityPoint]:
    if start is None:
        return []
    equity = _ZERO if initial_balance is None else initial_balance
    curve = [EquityPoint(start, equity)]
    for trade in trades:
        equity += trade.net_pnl
        curve.append(EquityPoint(trade.exit_time, equity))
    return curve


def _returns(
    curve: list[EquityPoint],
    initial_balance: Decimal | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> list[float] | None:
    if initial_balance is None or start is None or end is None:
        return None
    return daily_returns(curve, start, end)


def _streaks(nets: Sequence[Decimal]) -> tuple[int, int]:
    """Longest runs of wins and of losses (a breakeven ends both)."""
    best_wins = best_losses = wins = losses = 0
    for net in nets:
        wins = wins + 1 if net > _ZERO else 0
        losses = losses + 1 if net < _ZERO else 0
        best_wins, best_losses = max(best_wins, wins), max(best_losses, losses)
    return best_wins, best_losses


def _exposure(
    trades: Sequence[Trade], start: dt.datetime | None, end: dt.datetime | None
) -> float | None:
    if start is None or end is None or end <= start:
        return None
    covered = dt.timedelta(0)
    reach: dt.datetime | None = None
    for trade in sorted(trades, key=lambda t: t.entry_time):
        entry, exit_ = trade.entry_time, max(trade.entry_time, trade.exit_time)
        if reach is None or entry > reach:
            covered += exit_ - entry
            reach = exit_
        elif exit_ > reach:
            covered += exit_ - reach
            reach = exit_
    return covered / (end - start)
