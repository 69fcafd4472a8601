"""Trades (position episodes, flat to flat) and the incremental book that builds them.

Theory of operation
-------------------
A :class:`TradeBook` keeps one :class:`~tradewire.analytics.fifo.FifoLotBook`
per symbol and groups its legs into episodes: an episode opens when a
symbol's position leaves zero and closes when it returns to zero. A reversal
through zero closes one episode and opens the next with the same fill. A
closed episode is a :class:`Trade`; the legs are its detail.

The book is incremental and deterministic: :meth:`TradeBook.apply` takes one
fill, in arrival (``seq``) order, and returns :class:`TradeEvent` values
(``POSITION_OPENED`` / ``POSITION_CHANGED`` / ``POSITION_CLOSED``) for a
bridge to turn into user events. :meth:`TradeBook.rebuild` sorts its input
with :func:`replay_order` and applies it the same way, so a rebuild equals
the live book that saw the same fills. Fills are *not* re-sorted by time: an
exporter session may hold several replays whose times restart (the counter
``time_regressions`` counts such steps back), and timestamps are often too
coarse to order an entry and an exit of the same second.

Bars (:meth:`TradeBook.apply_bar`) feed MAE/MFE and the last price. A bar
counts for an episode when its ``ts`` lies in ``[entry_time, exit_time]``:
it is applied while the episode is open, or it is the symbol's latest bar
when the episode opens and its ``ts`` is not before the entry. In
:func:`replay_order` a bar goes before the fills of the same time, so the
bars opening at the entry and at the exit both count.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Iterable, Iterator
from decimal import Decimal
from enum import StrEnum
from typing import Final

import msgspec

from tradewire.analytics._episode import Episode
from tradewire.analytics.fifo import (
    DEFAULT_TOLERANCE,
    DustTally,
    FifoLotBook,
    FillMatch,
    Leg,
    PositionSide,
    QuantityTolerance,
)
from tradewire.analytics.fills import Bar, Fill

__all__ = [
    "OpenPosition",
    "Trade",
    "TradeBook",
    "TradeBookCounters",
    "TradeBookState",
    "TradeEvent",
    "TradeEventKind",
    "replay_order",
]

_ZERO: Final = Decimal(0)


class Trade(msgspec.Struct, frozen=True, gc=False):
    """One position episode of ``symbol``, from flat to flat.

    Prices are volume-weighted over the legs (entry: the lots' opening
    prices; exit: the closing fills' prices). ``total_quantity`` is the
    quantity opened (and closed) over the episode, ``peak_quantity`` the
    largest absolute position. ``mae`` and ``mfe`` are the adverse and
    favourable excursions in money (>= 0): the worst and best bar price
    reached, against ``entry_price``, times ``peak_quantity``; ``None`` when no
    bar fell inside the trade. ``opened_by`` / ``closed_by`` are execution ids.
    """

    symbol: str
    side: PositionSide
    entry_time: dt.datetime
    exit_time: dt.datetime
    entry_price: Decimal
    exit_price: Decimal
    peak_quantity: Decimal
    total_quantity: Decimal
    gross_pnl: Decimal
    commission: Decimal
    mae: Decimal | None
    mfe: Decimal | None
    legs: tuple[Leg, ...]
    opened_by: str
    closed_by: str

    @property
    def net_pnl(self) -> Decimal:
        """``gross_pnl - commission``."""
        return self.gross_pnl - self.commission

    @property
    def duration(self) -> dt.timedelta:
        """``exit_time - entry_time``."""
        return self.exit_time - self.entry_time


class OpenPosition(msgspec.Struct, frozen=True):
    """The open episode of ``symbol``, marked at the last known price.

    ``last_price`` is the later of the last fill price and the last bar close
    (a bar at the same time as a fill is later: it closes after it opens).
    ``unrealized_pnl`` is the open lots marked there, before fees;
    ``open_commission`` the opening commission still carried by the lots;
    ``realized_gross`` / ``realized_commission`` the legs already closed in
    this episode. :attr:`net_pnl` adds it all up.
    """

    symbol: str
    side: PositionSide
    quantity: Decimal
    average_price: Decimal
    opened_at: dt.datetime
    opened_by: str
    peak_quantity: Decimal
    last_price: Decimal
    last_price_time: dt.datetime
    unrealized_pnl: Decimal
    open_commission: Decimal
    realized_gross: Decimal
    realized_commission: Decimal

    @property
    def net_pnl(self) -> Decimal:
        """Realized and unrealized PnL of the episode so far, net of all its fees."""
        return (
            self.realized_gross
            - self.realized_commission
            + self.unrealized_pnl
            - self.open_commission
        )


class TradeEventKind(StrEnum):
    """What a fill did to a symbol's position."""

    POSITION_OPENED = "POSITION_OPENED"
    POSITION_CHANGED = "POSITION_CHANGED"
    POSITION_CLOSED = "POSITION_CLOSED"


_SEQ: Final = operator.attrgetter("seq")
_BAR_TIME: Final = operator.attrgetter("ts")
_OPENED: Final = TradeEventKind.POSITION_OPENED
_CHANGED: Final = TradeEventKind.POSITION_CHANGED


class TradeEvent(msgspec.Struct, frozen=True, gc=False):
    """One position event caused by fill ``execution_id``.

    ``position`` is the signed position after the event (0 after a close,
    also for the close half of a reversal); ``trade`` is set on close.
    """

    kind: TradeEventKind
    symbol: str
    execution_id: str
    time: dt.datetime
    position: Decimal
    trade: Trade | None = None


class TradeBookCounters(msgspec.Struct, frozen=True):
    """Counts of a :class:`TradeBook`'s input."""

    fills: int = 0
    bars: int = 0
    dust_fills: int = 0
    snaps: int = 0
    time_regressions: int = 0
    """Fills whose time is earlier than the previous fill's (processed in arrival order)."""


class TradeBookState(msgspec.Struct, frozen=True):
    """Everything a :class:`TradeBook` knows, as one comparable value."""

    trades: tuple[Trade, ...]
    open_positions: tuple[OpenPosition, ...]
    dust: tuple[DustTally, ...]
    counters: TradeBookCounters


class TradeBook:
    """Incremental trade reconstruction of one run, all symbols.

    See the module docstring. Closed trades are kept (in close order) for the
    life of the book: one book is one run.
    """

    def __init__(self, tolerance: QuantityTolerance = DEFAULT_TOLERANCE) -> None:
        self.tolerance = tolerance
        self._books: dict[str, FifoLotBook] = {}
        self._episodes: dict[str, Episode] = {}
        self._marks: dict[str, tuple[dt.datetime, int, Decimal]] = {}
        self._latest_bars: dict[str, Bar] = {}
        self._trades: list[Trade] = []
        self._last_time: dt.datetime | None = None
        self._fills = self._bars = self._regressions = 0

    @classmethod
    def rebuild(
        cls,
        fills: Iterable[Fill],
        bars: Iterable[Bar] = (),
        *,
        tolerance: QuantityTolerance = DEFAULT_TOLERANCE,
    ) -> TradeBook:
        """A new book fed ``fills`` and ``bars`` in :func:`replay_order`."""
        book = cls(tolerance)
        ordered_bars = sorted(bars, key=_BAR_TIME)
        if not ordered_bars:  # the common case, without the merge
            for fill in sorted(fills, key=_SEQ):
                book.apply(fill)
            return book
        for item in replay_order(fills, ordered_bars):
            if isinstance(item, Fill):
                book.apply(item)
            else:
                book.apply_bar(item)
        return book

    # -- input -----------------------------------------------------------------------------

    def apply(self, fill: Fill) -> list[TradeEvent]:
        """Apply one fill; returns its position events (none for a dust fill)."""
        symbol, time = fill.symbol, fill.time
        self._fills += 1
        if self._last_time is not None and time < self._last_time:
            self._regressions += 1
        self._last_time = time
        book = self._books.get(symbol)
        if book is None:
            book = self._books[symbol] = FifoLotBook(symbol, self.tolerance)
        match = book.apply(fill)
        mark = self._marks.get(symbol)
        if mark is None or time > mark[0] or (time == mark[0] and mark[1] == 0):
            self._marks[symbol] = (time, 0, fill.price)
        if match.dust:
            return []
        position = match.position_after
        events: list[TradeEvent] = []
        episode = self._episodes.get(symbol)
        if episode is not None and match.legs:
            episode.add(match)
            if match.opened or not position:
                events.append(self._close(episode, fill))
                if not match.opened:
                    return events
                episode = None
        if episode is None:
            episode = self._open(book, match)
            events.append(TradeEvent(_OPENED, symbol, fill.execution_id, time, position))
        else:
            events.append(TradeEvent(_CHANGED, symbol, fill.execution_id, time, position))
        size = abs(position)
        if size > episode.peak:
            episode.peak = size
        return events

    def apply_bar(self, bar: Bar) -> None:
        """Apply one bar: the last price, and MAE/MFE of an open episode."""
        self._bars += 1
        symbol = bar.symbol
        latest = self._latest_bars.get(symbol)
        if latest is None or bar.ts >= latest.ts:
            self._latest_bars[symbol] = bar
        mark = self._marks.get(symbol)
        # a bar closes after it opens: it is later than a fill of the same time
        if mark is None or bar.ts >= mark[0]:
            self._marks[symbol] = (bar.ts, 1, bar.close)
        episode = self._episodes.get(symbol)
        if episode is not None:
            episode.observe_bar(bar)

    # -- output ----------------------------------------------------------------------------

    @property
    def trades(self) -> tuple[Trade, ...]:
        """Closed trades, in the order they closed."""
        return tuple(self._trades)

    @property
    def counters(self) -> TradeBookCounters:
        """Counts of what the book was fed."""
        dust = self.dust()
        return TradeBookCounters(
            fills=self._fills,
            bars=self._bars,
            dust_fills=sum(d.fills for d in dust),
            snaps=sum(d.snaps for d in dust),
            time_regressions=self._regressions,
        )

    def position(self, symbol: str) -> Decimal:
        """The signed open quantity of ``symbol`` (0 when flat or unknown)."""
        book = self._books.get(symbol)
        return _ZERO if book is None else book.position

    def last_price(self, symbol: str) -> Decimal | None:
        """The later of the last fill price and the last bar close of ``symbol``."""
        mark = self._marks.get(symbol)
        return None if mark is None else mark[2]

    def open_position(self, symbol: str) -> OpenPosition | None:
        """The open episode of ``symbol`` marked at its last price, ``None`` when flat."""
        episode = self._episodes.get(symbol)
        if episode is None:
            return None
        mark_time, _, mark = self._marks[symbol]
        return _report(episode, self._books[symbol], mark, mark_time)

    def open_positions(self) -> tuple[OpenPosition, ...]:
        """Every open episode, by symbol."""
        reports = (self.open_position(symbol) for symbol in sorted(self._episodes))
        return tuple(r for r in reports if r is not None)

    def dust(self) -> tuple[DustTally, ...]:
        """What each symbol's lot book absorbed, by symbol."""
        return tuple(self._books[symbol].dust for symbol in sorted(self._books))

    def state(self) -> TradeBookState:
        """Everything the book knows, as one comparable value."""
        return TradeBookState(self.trades, self.open_positions(), self.dust(), self.counters)

    # -- internals -------------------------------------------------------------------------

    def _open(self, book: FifoLotBook, match: FillMatch) -> Episode:
        side = book.side
        assert side is not None  # the fill just opened a lot
        fill = match.fill
        episode = Episode(fill.symbol, side, fill.time, fill.execution_id)
        latest = self._latest_bars.get(fill.symbol)
        if latest is not None:
            episode.observe_bar(latest)
        self._episodes[fill.symbol] = episode
        return episode

    def _close(self, episode: Episode, fill: Fill) -> TradeEvent:
        trade = _trade(episode, fill)
        del self._episodes[fill.symbol]
        self._trades.append(trade)
        return TradeEvent(
            TradeEventKind.POSITION_CLOSED, fill.symbol, fill.execution_id, fill.time, _ZERO, trade
        )


def _trade(episode: Episode, fill: Fill) -> Trade:
    entry_price = episode.entry_notional / episode.quantity
    mae, mfe = episode.excursions(entry_price)
    return Trade(
        episode.symbol,
        episode.side,
        episode.entry_time,
        fill.time,
        entry_price,
        episode.exit_notional / episode.quantity,
        episode.peak,
        episode.quantity,
        episode.gross,
        episode.commission,
        mae,
        mfe,
        tuple(episode.legs),
        episode.opened_by,
        fill.execution_id,
    )


def _report(
    episode: Episode, book: FifoLotBook, mark: Decimal, mark_time: dt.datetime
) -> OpenPosition:
    lots = book.lots
    quantity = notional = commission = _ZERO
    for lot in lots:
        quantity += lot.quantity
        notional += lot.quantity * lot.price
        commission += lot.commission
    unrealized = quantity * mark - notional
    return OpenPosition(
        symbol=episode.symbol,
        side=episode.side,
        quantity=quantity,
        average_price=notional / quantity,
        opened_at=episode.entry_time,
        opened_by=episode.opened_by,
        peak_quantity=episode.peak,
        last_price=mark,
        last_price_time=mark_time,
        unrealized_pnl=unrealized if episode.side is PositionSide.LONG else -unrealized,
        open_commission=commission,
        realized_gross=episode.gross,
        realized_commission=episode.commission,
    )


def replay_order(fills: Iterable[Fill], bars: Iterable[Bar] = ()) -> Iterator[Fill | Bar]:
    """Fills in ``seq`` order, with each bar just before the first fill not earlier than it.

    Bars are taken in ``ts`` order; a bar goes before fills of the same time.
    """
    ordered_bars = sorted(bars, key=_BAR_TIME)
    pending = 0
    for fill in sorted(fills, key=_SEQ):
        while pending < len(ordered_bars) and ordered_bars[pending].ts <= fill.time:
            yield ordered_bars[pending]
            pending += 1
        yield fill
    yield from ordered_bars[pending:]
