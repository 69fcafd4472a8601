"""Trades (flat-to-flat episodes), position events, open positions and MAE/MFE, by hand."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from decimal import Decimal as D

from tradewire.analytics import (
    Bar,
    Fill,
    PositionSide,
    Side,
    Trade,
    TradeBook,
    TradeEventKind,
    replay_order,
)

T0 = dt.datetime(2025, 11, 20, 13, 0, tzinfo=dt.UTC)
_SEQ = itertools.count()
OPENED, CHANGED, CLOSED = (
    TradeEventKind.POSITION_OPENED,
    TradeEventKind.POSITION_CHANGED,
    TradeEventKind.POSITION_CLOSED,
)


def at(minute: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minute)


def fill(
    fid: str, side: str, qty: str, price: str, fee: str = "0", minute: int = 0, symbol: str = "X"
) -> Fill:
    return Fill(fid, symbol, Side(side), D(qty), D(price), D(fee), at(minute), next(_SEQ))


def bar(minute: int, low: str, high: str, close: str | None = None, symbol: str = "X") -> Bar:
    return Bar(symbol, at(minute), D(low), D(high), D(low), D(close or high))


def run(book: TradeBook, *fills: Fill) -> list[tuple[TradeEventKind, D]]:
    return [(e.kind, e.position) for f in fills for e in book.apply(f)]


def test_one_episode_with_scale_in_and_scale_out() -> None:
    book = TradeBook()
    events = run(
        book,
        fill("b1", "BUY", "1", "100", "0.1", 0),
        fill("b2", "BUY", "1", "104", "0.1", 1),
        fill("s1", "SELL", "1.5", "106", "0.15", 2),
        fill("s2", "SELL", "0.5", "101", "0.05", 3),
    )
    assert events == [(OPENED, D(1)), (CHANGED, D(2)), (CHANGED, D("0.5")), (CLOSED, D(0))]
    (trade,) = book.trades
    # legs: b1->s1 1 @ 100->106: gross 6, fee 0.1 + 0.15 * 1/1.5 = 0.2
    #       b2->s1 0.5 @ 104->106: gross 1.0, fee 0.1 * 0.5 = 0.05 + 0.05 = 0.10
    #       b2->s2 0.5 @ 104->101: gross -1.5, fee 0.05 + 0.05 = 0.10
    assert [(leg.open_fill_id, leg.close_fill_id) for leg in trade.legs] == [
        ("b1", "s1"),
        ("b2", "s1"),
        ("b2", "s2"),
    ]
    assert trade == Trade(
        symbol="X",
        side=PositionSide.LONG,
        entry_time=at(0),
        exit_time=at(3),
        entry_price=D("102"),  # (1 * 100 + 0.5 * 104 + 0.5 * 104) / 2
        exit_price=D("104.75"),  # (1 * 106 + 0.5 * 106 + 0.5 * 101) / 2 = 209.5 / 2
        peak_quantity=D("2"),
        total_quantity=D("2"),
        gross_pnl=D("5.5"),  # 6 + 1.0 - 1.5
        commission=D("0.40"),  # 0.1 + 0.1 + 0.15 + 0.05
        mae=None,  # no bars
        mfe=None,
        legs=trade.legs,
        opened_by="b1",
        closed_by="s2",
    )
    assert trade.net_pnl == D("5.10")
    assert trade.duration == dt.timedelta(minutes=3)


def test_a_reversal_closes_one_trade_and_opens_the_next() -> None:
    book = TradeBook()
    events = run(
        book,
        fill("b1", "BUY", "1", "100", minute=0),
        fill("s1", "SELL", "3", "90", minute=1),
        fill("b2", "BUY", "2", "80", minute=2),
    )
    assert events == [(OPENED, D(1)), (CLOSED, D(0)), (OPENED, D(-2)), (CLOSED, D(0))]
    long, short = book.trades
    assert (long.side, long.gross_pnl, long.closed_by) == (PositionSide.LONG, D("-10"), "s1")
    # the short opened by the rest of s1: 2 * (90 - 80) = 20
    assert (short.side, short.gross_pnl, short.opened_by) == (PositionSide.SHORT, D("20"), "s1")
    assert (short.entry_time, short.total_quantity) == (at(1), D(2))


def test_symbols_are_independent_episodes() -> None:
    book = TradeBook()
    run(
        book,
        fill("a1", "BUY", "1", "10", minute=0, symbol="A"),
        fill("b1", "SELL", "2", "50", minute=1, symbol="B"),
        fill("a2", "SELL", "1", "12", minute=2, symbol="A"),
        fill("b2", "BUY", "2", "49", minute=3, symbol="B"),
    )
    assert [(t.symbol, t.gross_pnl) for t in book.trades] == [("A", D(2)), ("B", D(2))]
    assert book.position("A") == book.position("B") == book.position("C") == 0


def test_a_dust_fill_makes_no_event_and_no_trade() -> None:
    book = TradeBook()
    assert book.apply(fill("d", "BUY", "1.110223024625e-16", "10")) == []
    assert book.trades == () and book.open_positions() == ()
    assert (book.counters.dust_fills, book.counters.fills) == (1, 1)


def test_mae_and_mfe_come_from_bars_between_entry_and_exit() -> None:
    fills = [fill("b", "BUY", "2", "100", minute=1), fill("s", "SELL", "2", "105", minute=3)]
    bars = [
        bar(0, "50", "150"),  # before the entry: ignored
        bar(1, "99", "101"),  # opens at the entry: counts
        bar(2, "97", "103"),
        bar(3, "98", "108"),  # opens at the exit: counts
        bar(4, "10", "200"),  # after the exit: ignored
    ]
    (trade,) = TradeBook.rebuild(fills, bars).trades
    assert trade.mae == D("6")  # (100 - 97) * 2
    assert trade.mfe == D("16")  # (108 - 100) * 2


def test_mae_and_mfe_of_a_short_are_mirrored_and_never_negative() -> None:
    fills = [fill("s", "SELL", "1", "100", minute=0), fill("b", "BUY", "1", "90", minute=2)]
    bars = [bar(0, "99", "100"), bar(1, "80", "99")]
    (trade,) = TradeBook.rebuild(fills, bars).trades
    assert trade.mae == D("0")  # the high never went above the entry
    assert trade.mfe == D("20")  # (100 - 80) * 1


def test_an_open_position_is_marked_at_the_later_of_fill_and_bar() -> None:
    book = TradeBook()
    run(
        book,
        fill("b", "BUY", "2", "100", "0.2", 0),
        fill("s", "SELL", "0.5", "110", "0.05", 1),
    )
    book.apply_bar(bar(0, "90", "95", "95"))  # older than the last fill: not the mark
    assert book.last_price("X") == D("110")
    book.apply_bar(bar(2, "100", "113", "112"))
    position = book.open_position("X")
    assert position is not None
    assert (position.last_price, position.last_price_time) == (D("112"), at(2))
    assert position.quantity == D("1.5") and position.average_price == D("100")
    assert position.unrealized_pnl == D("18.0")  # 1.5 * (112 - 100)
    assert position.open_commission == D("0.150")  # 0.2 - 0.2 * 0.5 / 2
    assert position.realized_gross == D("5.0")  # 0.5 * (110 - 100)
    assert position.realized_commission == D("0.100")  # 0.05 + 0.05
    assert position.net_pnl == D("22.750")  # 5.0 - 0.100 + 18.0 - 0.150
    assert book.open_positions() == (position,)
    assert book.open_position("unknown") is None


def test_a_bar_at_the_same_time_as_a_fill_closes_after_it() -> None:
    book = TradeBook()
    book.apply_bar(bar(1, "100", "101", "100.5"))
    book.apply(fill("b", "BUY", "1", "99", minute=1))
    assert book.last_price("X") == D("100.5")
    book.apply(fill("b2", "BUY", "1", "98", minute=2))
    assert book.last_price("X") == D("98")


def test_rebuild_sorts_by_arrival_and_equals_the_live_book() -> None:
    fills = [
        fill("b1", "BUY", "1", "100", minute=0),
        fill("s1", "SELL", "2", "101", minute=0),  # same time: arrival order decides
        fill("b2", "BUY", "1", "99", minute=1),
        fill("b3", "BUY", "3", "98", minute=2),
        fill("s2", "SELL", "1", "102", minute=3),
    ]
    bars = [bar(m, "97", "103") for m in range(4)]
    live = TradeBook()
    for item in replay_order(fills, bars):
        if isinstance(item, Fill):
            live.apply(item)
        else:
            live.apply_bar(item)
    shuffled = fills[:]
    random.Random(7).shuffle(shuffled)
    assert TradeBook.rebuild(shuffled, reversed(bars)).state() == live.state()
    assert [t.closed_by for t in live.trades] == ["s1", "b2"]


def test_a_restarting_clock_is_counted_and_arrival_order_kept() -> None:
    book = TradeBook()
    run(
        book,
        fill("b1", "BUY", "1", "100", minute=10),
        fill("s1", "SELL", "1", "101", minute=11),
        fill("b2", "BUY", "1", "100", minute=0),  # a second replay starts over
        fill("s2", "SELL", "1", "102", minute=1),
    )
    assert book.counters.time_regressions == 1
    assert [t.gross_pnl for t in book.trades] == [D(1), D(2)]
