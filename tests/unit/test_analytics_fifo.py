"""FIFO lot matching, worked by hand: partial fills, scale-in/out, reversals, fees, dust."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal as D

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tradewire.analytics import (
    FifoLotBook,
    Fill,
    Leg,
    OpenLot,
    PositionSide,
    QuantityTolerance,
    Side,
)

T0 = dt.datetime(2025, 11, 20, 13, 0, tzinfo=dt.UTC)
_SEQ = itertools.count()


def fill(
    fid: str,
    side: str,
    quantity: str,
    price: str,
    commission: str = "0",
    minute: int = 0,
    symbol: str = "BTC",
) -> Fill:
    return Fill(
        fid,
        symbol,
        Side(side),
        D(quantity),
        D(price),
        D(commission),
        T0 + dt.timedelta(minutes=minute),
        next(_SEQ),
    )


def legs_of(book: FifoLotBook, *fills: Fill) -> list[Leg]:
    return [leg for f in fills for leg in book.apply(f).legs]


def test_a_partial_scale_out_splits_the_opening_commission_pro_rata() -> None:
    book = FifoLotBook("BTC")
    b1 = fill("b1", "BUY", "1.0", "100", "1.0", 0)
    s1 = fill("s1", "SELL", "0.4", "110", "0.4", 1)
    s2 = fill("s2", "SELL", "0.6", "105", "0.3", 2)
    first, second = legs_of(book, b1, s1, s2)
    # 0.4 closed at 110: gross 0.4 * (110 - 100) = 4.0;
    # commission: opening 1.0 * 0.4 / 1.0 = 0.4, plus all of s1's 0.4 = 0.8
    assert first == Leg(
        "BTC", PositionSide.LONG, "b1", "s1", D("0.4"), D("100"), D("110"),
        b1.time, s1.time, D("4.0"), D("0.8"),
    )  # fmt: skip
    # the rest 0.6 at 105: gross 0.6 * 5 = 3.0; commission 1.0 - 0.4 = 0.6 left + 0.3 = 0.9
    assert (second.quantity, second.gross_pnl, second.commission) == (D("0.6"), D("3.0"), D("0.9"))
    assert second.net_pnl == D("2.1")  # 3.0 - 0.9
    assert book.position == 0
    assert book.side is None


def test_scale_in_then_out_closes_oldest_lots_first() -> None:
    book = FifoLotBook("BTC")
    fills = [
        fill("b1", "BUY", "1", "100", "0.5", 0),
        fill("b2", "BUY", "2", "103", "1.0", 1),
        fill("s1", "SELL", "2.5", "106", "0.25", 2),
    ]
    first, second = legs_of(book, *fills)
    # s1 closes all of b1: gross 1 * 6 = 6; commission 0.5 + 0.25 * 1 / 2.5 = 0.5 + 0.1
    assert (first.open_fill_id, first.quantity, first.gross_pnl) == ("b1", D("1"), D("6"))
    assert first.commission == D("0.6")
    # then 1.5 of b2's 2: gross 1.5 * 3 = 4.5; commission 1.0 * 1.5 / 2 = 0.75, + rest of s1 0.15
    assert (second.open_fill_id, second.quantity, second.gross_pnl) == ("b2", D("1.5"), D("4.5"))
    assert second.commission == D("0.90")
    assert book.position == D("0.5")
    assert book.lots == (
        OpenLot(PositionSide.LONG, "b2", fills[1].time, D("103"), D("0.5"), D("0.25")),
    )
    # the last 0.5 at 99: gross 0.5 * (99 - 103) = -2.0; commission 0.25 + 0.05
    (last,) = legs_of(book, fill("s2", "SELL", "0.5", "99", "0.05", 3))
    assert (last.gross_pnl, last.commission, last.net_pnl) == (D("-2.0"), D("0.30"), D("-2.30"))


def test_a_reversal_splits_the_fill_into_a_closing_and_an_opening_part() -> None:
    book = FifoLotBook("BTC")
    book.apply(fill("b1", "BUY", "1", "100", "0.2", 0))
    match = book.apply(fill("s1", "SELL", "3", "90", "0.6", 1))
    (leg,) = match.legs
    # closes 1 of 3: gross 1 * (90 - 100) = -10; commission 0.2 + 0.6 * 1 / 3 = 0.4
    assert (leg.side, leg.gross_pnl, leg.commission) == (PositionSide.LONG, D("-10"), D("0.4"))
    # opens the other 2 short, carrying 0.6 - 0.2 = 0.4 of commission
    assert (match.opened, match.position_before, match.position_after) == (D(2), D(1), D(-2))
    (lot,) = book.lots
    assert (lot.side, lot.quantity, lot.commission) == (PositionSide.SHORT, D("2"), D("0.4"))
    (short,) = legs_of(book, fill("b2", "BUY", "2", "80", "0", 2))
    # short 2 from 90 to 80: gross 2 * (90 - 80) = 20
    assert (short.side, short.gross_pnl, short.commission) == (
        PositionSide.SHORT,
        D("20"),
        D("0.4"),
    )


def test_pro_rata_shares_always_add_up_exactly() -> None:
    book = FifoLotBook("BTC")
    book.apply(fill("b1", "BUY", "3", "10", "1", 0))
    legs = legs_of(book, *(fill(f"s{i}", "SELL", "1", "11", "0", i) for i in range(1, 4)))
    # 1/3 of 1 is not a finite decimal: shares are rounded to 12 decimals,
    # each taken from what the lot still carries, and the last takes the rest:
    # 1 * 1/3 = 0.333333333333; 0.666666666667 * 1/2 = 0.3333333333335 -> ...334 (half even);
    # 0.666666666667 - 0.333333333334 = 0.333333333333
    assert [leg.commission for leg in legs] == [
        D("0.333333333333"),
        D("0.333333333334"),
        D("0.333333333333"),
    ]
    assert sum(leg.commission for leg in legs) == D(1)


def test_shares_of_a_large_commission_stay_exact() -> None:
    # an unrounded 28-digit share of 1/3 would leave 100 - 0.33.. needing 30 digits
    book = FifoLotBook("BTC")
    book.apply(fill("b1", "BUY", "300", "10", "100", 0))
    legs = legs_of(book, *(fill(f"s{i}", "SELL", "1", "11", "0", i) for i in range(1, 301)))
    assert legs[0].commission == D("0.333333333333")  # 100 * 1 / 300
    assert sum(leg.commission for leg in legs) == D(100)


def test_a_dust_fill_is_absorbed_and_counted() -> None:
    book = FifoLotBook("BTC")
    book.apply(fill("b1", "BUY", "1", "100", "0", 0))
    match = book.apply(fill("dust", "SELL", "1.110223024625e-16", "101", "0.01", 1))
    assert match.dust and match.legs == () and match.opened == 0
    assert match.absorbed == D("1.110223024625e-16")
    assert book.position == D(1)
    dust = book.dust
    assert (dust.fills, dust.snaps) == (1, 0)
    assert dust.quantity == D("-1.110223024625e-16")
    assert dust.notional == D("-1.110223024625e-16") * D(101)
    # held and marked at 100: -1.11e-16 * 100 + 1.11e-16 * 101 - 0.01 (its fee)
    assert dust.pnl(D(100)) == D("1.110223024625e-16") - D("0.01")


def test_the_sap_dust_sequence_closes_flat_with_one_snap() -> None:
    # session 4246ba6b, 2025-11-20 13:06, exactly as exported
    book = FifoLotBook("BTC/USDT Perpetual")
    legs = legs_of(
        book,
        fill("c843", "BUY", "0.813", "91813.4"),
        fill("b2aa", "BUY", "0.187", "91813.4"),
        fill("ec04", "SELL", "0.813", "91759.3"),
        fill("2582", "SELL", "1.110223024625e-16", "91759.3"),
        fill("49f9", "SELL", "0.1869999999999999", "91781.4"),
    )
    assert [(leg.open_fill_id, leg.close_fill_id, leg.quantity) for leg in legs] == [
        ("c843", "ec04", D("0.813")),
        ("b2aa", "49f9", D("0.187")),  # the lot's quantity: 0.1869999999999999 snapped to it
    ]
    # 0.187 * (91781.4 - 91813.4) = 0.187 * -32.0
    assert legs[1].gross_pnl == D("-5.9840")
    assert book.position == 0 and book.lots == ()
    dust = book.dust
    assert (dust.fills, dust.snaps) == (1, 1)
    # the dust sell -1.110223024625e-16, and the snap took -1e-16 *from* a sell: +1e-16
    assert dust.quantity == D("-1.110223024625e-16") + D("1e-16")
    assert dust.notional == D("-1.110223024625e-16") * D("91759.3") + D("1e-16") * D("91781.4")


def test_snaps_are_relative_to_size_and_can_be_turned_off() -> None:
    book = FifoLotBook("X")
    book.apply(fill("b", "BUY", "1000000", "1"))
    match = book.apply(fill("s", "SELL", "999999.9999995", "1"))
    # |1e6 - 999999.9999995| = 5e-7 <= 1e-12 * 1e6 = 1e-6: the same quantity
    assert match.legs[0].quantity == D("1000000") and book.position == 0
    assert match.absorbed == D("-5E-7")
    exact = FifoLotBook("X", QuantityTolerance(D(0), D(0)))
    exact.apply(fill("b", "BUY", "1000000", "1"))
    exact.apply(fill("s", "SELL", "999999.9999995", "1"))
    assert exact.position == D("5E-7")


def test_a_near_equal_larger_fill_does_not_open_a_dust_lot() -> None:
    book = FifoLotBook("X")
    book.apply(fill("b", "BUY", "0.187", "10"))
    match = book.apply(fill("s", "SELL", "0.1870000000000001", "11"))
    assert match.opened == 0 and book.lots == ()
    assert match.absorbed == D("1E-16")
    assert book.dust.quantity == D("-1E-16")


def test_short_positions_scale_and_profit_when_the_price_falls() -> None:
    book = FifoLotBook("X")
    book.apply(fill("s1", "SELL", "2", "50"))
    book.apply(fill("s2", "SELL", "1", "52"))
    legs = legs_of(book, fill("b1", "BUY", "2.5", "45"))
    # 2 * (50 - 45) = 10, then 0.5 * (52 - 45) = 3.5
    assert [leg.gross_pnl for leg in legs] == [D("10"), D("3.5")]
    assert book.position == D("-0.5") and book.side is PositionSide.SHORT


def test_negative_tolerances_are_refused() -> None:
    with pytest.raises(ValueError):
        QuantityTolerance(D("-1"), D(0))


def test_tolerance_same_and_dust_are_absolute_or_relative() -> None:
    tolerance = QuantityTolerance()
    assert tolerance.is_dust(D("1e-9")) and not tolerance.is_dust(D("1.1e-9"))
    assert tolerance.same(D("0.187"), D("0.1869999999999999"))  # 1e-16 <= 1e-9
    assert tolerance.same(D(10**6), D("1000000.000001"))  # 1e-6 <= 1e-12 * 1000000.000001
    assert not tolerance.same(D(10**6), D("1000000.00001"))
    assert not tolerance.same(D(1000), D("1000.000001"))  # 1e-6 > max(1e-9, 1e-12 * 1000)
    # a billion tokens: one token is a real difference
    assert not tolerance.same(D(10**9), D(10**9 - 1))
    assert not tolerance.same(D("0.001"), D("0.0010000011"))  # 1.1e-9 > max(1e-9, 1e-15)


@given(
    lot=st.decimals(min_value=D("1e-6"), max_value=D(10**7), places=9),
    gap=st.decimals(min_value=D("-1e-5"), max_value=D("1e-5"), places=18),
)
def test_a_lot_closes_in_full_exactly_when_the_quantities_are_the_same(lot: D, gap: D) -> None:
    tolerance = QuantityTolerance()
    size = lot + gap
    assume(size > tolerance.absolute)
    book = FifoLotBook("X")
    book.apply(fill("b", "BUY", str(lot), "1"))
    match = book.apply(fill("s", "SELL", str(size), "1"))
    assert (book.position == 0) == tolerance.same(lot, size)
    assert match.closed + match.opened + match.absorbed == size
