"""The open position episode of one symbol, as a :class:`~tradewire.analytics.trades.TradeBook`
accumulates it: its legs so far, its peak quantity and the bar extremes seen."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Final

from tradewire.analytics.fifo import FillMatch, Leg, PositionSide
from tradewire.analytics.fills import Bar

__all__ = ["Episode"]

_ZERO: Final = Decimal(0)


class Episode:
    """A position episode being built (mutable, private to the trade book)."""

    __slots__ = (
        "commission",
        "entry_time",
        "exit_notional",
        "gross",
        "high",
        "legs",
        "low",
        "opened_by",
        "peak",
        "quantity",
        "side",
        "symbol",
    )

    def __init__(
        self, symbol: str, side: PositionSide, entry_time: dt.datetime, opened_by: str
    ) -> None:
        self.symbol = symbol
        self.side = side
        self.entry_time = entry_time
        self.opened_by = opened_by
        self.legs: list[Leg] = []
        self.peak = _ZERO
        # totals over the legs so far
        self.quantity = self.exit_notional = self.gross = self.commission = _ZERO
        self.low: Decimal | None = None
        self.high: Decimal | None = None

    def add(self, match: FillMatch) -> None:
        """Record the legs a fill closed in this episode."""
        self.legs.extend(match.legs)
        self.quantity += match.closed
        self.exit_notional += match.closed * match.fill.price
        self.gross += match.gross_pnl
        self.commission += match.commission

    @property
    def entry_notional(self) -> Decimal:
        """Sum of leg quantity * entry price, exactly (from the exit notional and gross PnL)."""
        if self.side is PositionSide.LONG:
            return self.exit_notional - self.gross
        return self.exit_notional + self.gross

    def observe_bar(self, bar: Bar) -> None:
        """Widen the episode's price range with a bar not earlier than the entry."""
        if bar.ts < self.entry_time:
            return
        if self.low is None or bar.low < self.low:
            self.low = bar.low
        if self.high is None or bar.high > self.high:
            self.high = bar.high

    def excursions(self, entry_price: Decimal) -> tuple[Decimal | None, Decimal | None]:
        """(MAE, MFE) in money, both >= 0, or (None, None) without bars."""
        if self.low is None or self.high is None:
            return None, None
        if self.side is PositionSide.LONG:
            adverse, favourable = entry_price - self.low, self.high - entry_price
        else:
            adverse, favourable = self.high - entry_price, entry_price - self.low
        return max(adverse, _ZERO) * self.peak, max(favourable, _ZERO) * self.peak
