"""Run metrics: a case worked by hand, edge cases, and a cross-check against empyrical.

The independent reference for Sharpe, Sortino and max drawdown is
empyrical-reloaded (a dev dependency), fed a daily return series built with
pandas ``resample`` rather than our own day loop.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Sequence
from decimal import Decimal as D

import empyrical
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradewire.analytics import (
    Bar,
    EquityPoint,
    PositionSide,
    Trade,
    compute_run_metrics,
)

DAY0 = dt.datetime(2025, 11, 17, tzinfo=dt.UTC)


def at(day: int, hour: float) -> dt.datetime:
    return DAY0 + dt.timedelta(days=day, hours=hour)


def trade(
    entry: dt.datetime, exit_: dt.datetime, gross: str, fee: str = "0", symbol: str = "X"
) -> Trade:
    return Trade(
        symbol=symbol,
        side=PositionSide.LONG,
        entry_time=entry,
        exit_time=exit_,
        entry_price=D(100),
        exit_price=D(100),
        peak_quantity=D(1),
        total_quantity=D(1),
        gross_pnl=D(gross),
        commission=D(fee),
        mae=None,
        mfe=None,
        legs=(),
        opened_by="o",
        closed_by="c",
    )


# net: +100, -50, -30, 0, +80 over three UTC days
HAND = [
    trade(at(0, 10), at(0, 11), "110", "10"),
    trade(at(0, 12), at(0, 13), "-45", "5"),
    trade(at(1, 9), at(1, 10), "-30"),
    trade(at(1, 11), at(1, 12), "0"),
    trade(at(2, 10), at(2, 14), "82", "2"),
]


def test_a_run_worked_by_hand() -> None:
    m = compute_run_metrics(reversed(HAND), initial_balance=D(1000))
    assert (m.total_trades, m.winning_trades, m.losing_trades, m.breakeven_trades) == (5, 2, 2, 1)
    assert m.win_rate == 0.4  # 2 / 5
    assert (m.gross_profit, m.gross_loss) == (D(180), D(-80))  # 100 + 80, -50 - 30
    assert m.profit_factor == 2.25  # 180 / 80
    assert m.expectancy == D(20)  # (100 - 50 - 30 + 0 + 80) / 5
    assert (m.average_win, m.average_loss) == (D(90), D(-40))
    assert (m.largest_win, m.largest_loss) == (D(100), D(-50))
    assert (m.max_consecutive_wins, m.max_consecutive_losses) == (1, 2)  # W L L B W
    assert (m.gross_pnl, m.total_fees, m.net_pnl) == (D(117), D(17), D(100))
    assert m.equity_curve == (
        EquityPoint(at(0, 10), D(1000)),
        EquityPoint(at(0, 11), D(1100)),
        EquityPoint(at(0, 13), D(1050)),
        EquityPoint(at(1, 10), D(1020)),
        EquityPoint(at(1, 12), D(1020)),
        EquityPoint(at(2, 14), D(1100)),
    )
    assert m.max_drawdown == D(80)  # 1100 -> 1020
    assert m.max_drawdown_fraction == pytest.approx(80 / 1100)
    assert m.max_drawdown_duration == dt.timedelta(days=2, hours=3)  # d0 11:00 -> d2 14:00
    # end-of-day equity 1050, 1020, 1100 against 1000, 1050, 1020
    daily = [1050 / 1000 - 1, 1020 / 1050 - 1, 1100 / 1020 - 1]
    assert m.sharpe == pytest.approx(
        statistics.mean(daily) / statistics.stdev(daily) * math.sqrt(365)
    )
    downside = math.sqrt((1020 / 1050 - 1) ** 2 / 3)
    assert m.sortino == pytest.approx(statistics.mean(daily) / downside * math.sqrt(365))
    # open 1 + 1 + 1 + 1 + 4 = 8 h of d0 10:00 -> d2 14:00 = 52 h
    assert m.exposure == pytest.approx(8 / 52)
    assert (m.start, m.end) == (at(0, 10), at(2, 14))


def test_without_an_initial_balance_equity_starts_at_zero_and_ratios_are_none() -> None:
    m = compute_run_metrics(HAND)
    assert [p.equity for p in m.equity_curve] == [D(v) for v in (0, 100, 50, 20, 20, 100)]
    assert m.max_drawdown == D(80)
    assert m.max_drawdown_fraction == pytest.approx(0.8)  # 80 / a peak of 100
    assert m.sharpe is None and m.sortino is None


def test_a_drawdown_from_a_zero_peak_has_no_fraction_and_lasts_to_the_end() -> None:
    trades = [trade(at(0, 1), at(0, 2), "-10"), trade(at(0, 3), at(0, 4), "5")]
    m = compute_run_metrics(trades, period=(at(0, 0), at(1, 0)))
    assert m.max_drawdown == D(10)
    assert m.max_drawdown_fraction is None
    assert m.max_drawdown_duration == dt.timedelta(days=1)  # never recovered: to the period end
    assert m.profit_factor == 0.5  # 5 / 10


def test_no_losses_means_no_profit_factor_and_no_sortino() -> None:
    trades = [trade(at(0, 1), at(0, 2), "10"), trade(at(1, 1), at(1, 2), "20")]
    m = compute_run_metrics(trades, initial_balance=D(100))
    assert m.profit_factor is None and m.largest_loss is None and m.average_loss is None
    assert m.sortino is None
    assert m.sharpe is not None
    assert m.max_drawdown == 0 and m.max_drawdown_duration == dt.timedelta(0)


def test_no_trades() -> None:
    m = compute_run_metrics([])
    assert (m.total_trades, m.win_rate, m.expectancy, m.exposure) == (0, None, None, None)
    assert m.equity_curve == () and m.net_pnl == 0 and m.max_drawdown_fraction is None


def test_exposure_counts_overlapping_trades_once_and_bars_widen_the_period() -> None:
    trades = [
        trade(at(0, 1), at(0, 3), "1", symbol="A"),
        trade(at(0, 2), at(0, 4), "1", symbol="B"),  # overlaps A from 2 to 3
    ]
    bars = [Bar("A", at(0, 0), D(1), D(1), D(1), D(1)), Bar("A", at(0, 8), D(1), D(1), D(1), D(1))]
    m = compute_run_metrics(trades, bars=bars)
    assert m.exposure == pytest.approx(3 / 8)  # 1:00 -> 4:00 of 0:00 -> 8:00


# --- cross-check against empyrical -----------------------------------------------------------


def empyrical_daily_returns(trades: Sequence[Trade], initial: float) -> pd.Series:
    exits = pd.DatetimeIndex([t.exit_time for t in trades])
    pnl = pd.Series([float(t.net_pnl) for t in trades], index=exits)
    start = min(t.entry_time for t in trades)
    days = pd.date_range(start.date(), exits.max().date(), freq="D", tz="UTC")
    daily = pnl.resample("D").sum().reindex(days, fill_value=0.0)
    equity = initial + daily.cumsum()
    return equity / equity.shift(1, fill_value=initial) - 1


@st.composite
def trade_lists(draw: st.DrawFn) -> list[Trade]:
    trades = []
    time = DAY0
    for _ in range(draw(st.integers(1, 30))):
        time += dt.timedelta(hours=draw(st.integers(0, 60)))
        entry = time
        time += dt.timedelta(minutes=draw(st.integers(0, 600)))
        trades.append(trade(entry, time, str(draw(st.integers(-300, 300)))))
    return trades


@given(trade_lists())
def test_sharpe_sortino_and_drawdown_match_empyrical(trades: list[Trade]) -> None:
    initial = 10_000
    m = compute_run_metrics(trades, initial_balance=D(initial))
    returns = empyrical_daily_returns(trades, initial)
    with np.errstate(all="ignore"):
        sharpe = empyrical.sharpe_ratio(returns, annualization=365)
        sortino = empyrical.sortino_ratio(returns, annualization=365)
    if m.sharpe is None:
        assert len(returns) < 2 or not np.isfinite(sharpe)
    else:
        assert m.sharpe == pytest.approx(sharpe, rel=1e-9)
    if m.sortino is None:
        assert len(returns) < 2 or not np.isfinite(sortino)
    else:
        assert m.sortino == pytest.approx(sortino, rel=1e-9)
    equity = np.array([float(p.equity) for p in m.equity_curve])
    per_trade = equity[1:] / equity[:-1] - 1
    assert m.max_drawdown_fraction == pytest.approx(-empyrical.max_drawdown(per_trade), abs=1e-12)
    money = np.max(np.maximum.accumulate(equity) - equity)
    assert float(m.max_drawdown) == pytest.approx(money)
