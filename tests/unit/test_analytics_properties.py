"""Properties of the lot and trade books over random fill streams.

The references here are independent of the books: cash-flow accounting for
PnL (every fill's signed notional and fee, plus the final position marked at
the last price), and unit-lot FIFO for the matching (integer quantities
expanded into 1-unit lots, matched first in, first out). The references add
in a 100-digit decimal context, so they are exact even where the fills' own
sums (1 + 1.1e-16) need more than the default 28 digits; the books run in
the default context.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from decimal import Context, localcontext
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from tradewire.analytics import (
    DEFAULT_TOLERANCE,
    FifoLotBook,
    Fill,
    Side,
    TradeBook,
    TradeEventKind,
)

T0 = dt.datetime(2025, 11, 19, 23, 0, tzinfo=dt.UTC)
DUST = D("1.110223024625E-16")
EXACT = Context(prec=100)
ROUND_SIZES = [D(s) for s in ("0.5", "1", "1.5", "2", "0.187", "0.813")]


_GAPS = st.sampled_from([0, 0, 1, 60, 3_600, 90_000])  # seconds; ties included
# mostly a few round sizes, so lots close exactly (and snap, with noise) and reverse
_SIZES = st.one_of(
    st.sampled_from(ROUND_SIZES),
    st.sampled_from(ROUND_SIZES),
    st.integers(1, 5_000).map(lambda n: D(n) / 1000),
)
_NOISE = st.sampled_from([D(0), D(0), D(0), D("1e-16"), D("-1e-16"), D("5e-17"), DUST])
_ROW = st.tuples(
    _GAPS,
    st.sampled_from(["AAA", "BBB"]),
    st.sampled_from(Side),
    st.integers(100, 200_000),  # price in cents
    st.integers(0, 300),  # commission in cents
)


@st.composite
def fill_streams(draw: st.DrawFn, *, noisy: bool = False, integral: bool = False) -> list[Fill]:
    """Up to 30 fills of two symbols, times non-decreasing (ties included), seq = arrival.

    ``noisy`` adds float noise (+-1e-16) to quantities and makes some fills
    dust (1.11e-16); ``integral`` draws quantities 1..5 only.
    """
    sizes = st.integers(1, 5).map(D) if integral else _SIZES
    if noisy:
        sizes = st.tuples(sizes, _NOISE).map(lambda t: DUST if t[1] is DUST else t[0] + t[1])
    length = draw(st.integers(0, 30))
    rows = draw(st.lists(st.tuples(_ROW, sizes), min_size=length, max_size=length))
    fills: list[Fill] = []
    time = T0
    for seq, ((gap, symbol, side, cents, fee_cents), quantity) in enumerate(rows):
        time += dt.timedelta(seconds=gap)
        fills.append(
            Fill(f"f{seq}", symbol, side, quantity, D(cents) / 100, D(fee_cents) / 100, time, seq)
        )
    return fills


# --- independent references ------------------------------------------------------------------


def last_prices(fills: Iterable[Fill]) -> dict[str, D]:
    """Each symbol's price at its latest (time, arrival)."""
    latest: dict[str, Fill] = {}
    for f in fills:
        seen = latest.get(f.symbol)
        if seen is None or (f.time, f.seq) >= (seen.time, seen.seq):
            latest[f.symbol] = f
    return {symbol: f.price for symbol, f in latest.items()}


def cash_flow_pnl(fills: Sequence[Fill], marks: dict[str, D]) -> D:
    """Cash in minus cash out minus fees, plus each final position marked at ``marks``."""
    cash = D(0)
    position: dict[str, D] = defaultdict(D)
    with localcontext(EXACT):
        for f in fills:
            signed = f.quantity if f.side is Side.BUY else -f.quantity
            cash -= signed * f.price + f.commission
            position[f.symbol] += signed
        return cash + sum((q * marks[s] for s, q in position.items()), D(0))


def book_pnl(book: TradeBook) -> D:
    """Closed trades' net PnL + open positions' net PnL + what dust absorbed, marked."""
    trades, positions, tallies = book.trades, book.open_positions(), book.dust()
    with localcontext(EXACT):
        closed = sum((t.net_pnl for t in trades), D(0))
        open_ = sum((p.net_pnl for p in positions), D(0))
        dust = D(0)
        for tally in tallies:
            mark = book.last_price(tally.symbol)
            assert mark is not None
            dust += tally.pnl(mark)
        return closed + open_ + dust


def unit_fifo(fills: Sequence[Fill]) -> dict[tuple[str, str], D]:
    """Matched quantity per (opening fill, closing fill), from 1-unit lots."""
    lots: dict[str, deque[tuple[str, int]]] = defaultdict(deque)
    matched: dict[tuple[str, str], D] = defaultdict(D)
    for f in fills:
        sign = 1 if f.side is Side.BUY else -1
        queue = lots[f.symbol]
        for _ in range(int(f.quantity)):
            if queue and queue[0][1] != sign:
                opener, _sign = queue.popleft()
                matched[(opener, f.execution_id)] += 1
            else:
                queue.append((f.execution_id, sign))
    return dict(matched)


# --- properties ------------------------------------------------------------------------------


@given(fill_streams())
def test_pnl_equals_cash_flow_accounting(fills: list[Fill]) -> None:
    book = TradeBook.rebuild(fills)
    assert all(tally.quantity == 0 and tally.fills == 0 for tally in book.dust())
    assert book_pnl(book) == cash_flow_pnl(fills, last_prices(fills))


@given(fill_streams(noisy=True))
def test_pnl_equals_cash_flow_accounting_with_dust_and_noise(fills: list[Fill]) -> None:
    book = TradeBook.rebuild(fills)
    assert book_pnl(book) == cash_flow_pnl(fills, last_prices(fills))
    # and what dust absorbed is itself negligible
    for tally in book.dust():
        assert abs(tally.quantity) <= 4 * len(fills) * DUST


@given(fill_streams(noisy=True))
def test_quantities_and_commissions_are_conserved(fills: list[Fill]) -> None:
    books: dict[str, FifoLotBook] = {}
    closed_from: dict[str, D] = defaultdict(D)
    opened: dict[str, D] = {}
    fees = D(0)
    for f in fills:
        book = books.setdefault(f.symbol, FifoLotBook(f.symbol))
        match = book.apply(f)
        assert sum((leg.quantity for leg in match.legs), D(0)) + match.opened + match.absorbed == (
            f.quantity
        )
        opened[f.execution_id] = match.opened
        for leg in match.legs:
            closed_from[leg.open_fill_id] += leg.quantity
            fees += leg.commission
    still_open = {lot.fill_id: lot.quantity for b in books.values() for lot in b.lots}
    for fid, quantity in opened.items():
        assert closed_from[fid] + still_open.get(fid, D(0)) == quantity
    with localcontext(EXACT):
        for book in books.values():
            signed = sum((f.signed_quantity for f in fills if f.symbol == book.symbol), D(0))
            assert book.position == signed - book.dust.quantity
            assert all(lot.quantity > DEFAULT_TOLERANCE.absolute for lot in book.lots)
            fees += sum((lot.commission for lot in book.lots), D(0)) + book.dust.commission
        assert fees == sum((f.commission for f in fills), D(0))


@given(fill_streams(integral=True))
def test_matching_is_first_in_first_out(fills: list[Fill]) -> None:
    books: dict[str, FifoLotBook] = {}
    ours: dict[tuple[str, str], D] = defaultdict(D)
    for f in fills:
        for leg in books.setdefault(f.symbol, FifoLotBook(f.symbol)).apply(f).legs:
            ours[(leg.open_fill_id, leg.close_fill_id)] += leg.quantity
    assert ours == unit_fifo(fills)


@given(fill_streams(noisy=True), st.randoms(use_true_random=False))
def test_rebuild_equals_incremental(fills: list[Fill], rnd: random.Random) -> None:
    live = TradeBook()
    events = [event for f in fills for event in live.apply(f)]
    shuffled = fills[:]
    rnd.shuffle(shuffled)
    rebuilt = TradeBook.rebuild(shuffled)
    assert rebuilt.state() == live.state()
    closed = [e.trade for e in events if e.kind is TradeEventKind.POSITION_CLOSED]
    assert tuple(closed) == live.trades


@given(fill_streams(noisy=True))
def test_no_trade_or_leg_is_empty(fills: list[Fill]) -> None:
    book = TradeBook.rebuild(fills)
    for trade in book.trades:
        assert trade.total_quantity > DEFAULT_TOLERANCE.absolute
        assert trade.peak_quantity > DEFAULT_TOLERANCE.absolute
        assert trade.legs and all(leg.quantity > 0 for leg in trade.legs)
        assert trade.total_quantity == sum((leg.quantity for leg in trade.legs), D(0))


@given(fill_streams(noisy=True))
def test_events_follow_the_position(fills: list[Fill]) -> None:
    book = TradeBook()
    position: dict[str, D] = defaultdict(D)
    for f in fills:
        for event in book.apply(f):
            before = position[event.symbol]
            if event.kind is TradeEventKind.POSITION_OPENED:
                assert before == 0 and event.position != 0
            elif event.kind is TradeEventKind.POSITION_CHANGED:
                assert before != 0 and event.position != 0
                assert (before > 0) == (event.position > 0)
            else:
                assert before != 0 and event.position == 0 and event.trade is not None
            position[event.symbol] = event.position
        assert position[f.symbol] == book.position(f.symbol)
