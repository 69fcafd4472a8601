"""Fill and bar values, and their converters from plain rows (floats are repr-exact)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradewire.analytics import (
    AnalyticsInputError,
    Bar,
    Fill,
    Side,
    bar_from_mapping,
    fill_from_mapping,
    fills_from_rows,
    to_decimal,
    to_utc,
)
from tradewire.errors import TradewireError

T0 = dt.datetime(2025, 11, 20, 13, 6, tzinfo=dt.UTC)

SAP_ROW: dict[str, object] = {
    "execution_id": "25823deeb24b",
    "order_id": "o-1",
    "strategy_id": "4246ba6b",
    "symbol": "BTC/USDT Perpetual",
    "side": "SELL",
    "exec_time": "2025-11-20 13:06:00.000000",
    "price": 91759.3,
    "quantity": 1.110223024625e-16,
    "fee": 0.0,
    "fee_currency": None,
}


def test_a_float_becomes_the_decimal_its_repr_shows() -> None:
    assert to_decimal(0.1) == Decimal("0.1")
    binary_exact = Decimal.from_float(0.1)  # 0.1000000000000000055511151231257827...
    assert to_decimal(0.1) != binary_exact
    assert to_decimal(1.110223024625e-16) == Decimal("1.110223024625E-16")
    assert to_decimal(0.1869999999999999) == Decimal("0.1869999999999999")


def test_text_ints_and_decimals_are_read_exactly() -> None:
    assert to_decimal(" 91759.30 ") == Decimal("91759.30")
    assert to_decimal(3) == Decimal(3)
    assert to_decimal(Decimal("1e-9")) == Decimal("1e-9")


@pytest.mark.parametrize("bad", [True, None, "abc", "NaN", float("inf"), Decimal("-Infinity"), []])
def test_unreadable_numbers_are_refused_with_the_field(bad: object) -> None:
    with pytest.raises(AnalyticsInputError) as caught:
        to_decimal(bad, "price")
    assert caught.value.field == "price"
    assert isinstance(caught.value, TradewireError)
    assert isinstance(caught.value, ValueError)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_finite_float_round_trips_through_its_decimal(x: float) -> None:
    assert float(to_decimal(x)) == x


def test_times_naive_text_is_utc_and_offsets_are_converted() -> None:
    assert to_utc("2025-11-20 13:06:00.000000") == T0
    assert to_utc("2025-11-20T14:06:00+01:00") == T0
    assert to_utc(dt.datetime(2025, 11, 20, 13, 6)) == T0
    assert to_utc(int(T0.timestamp() * 1000)) == T0
    with pytest.raises(AnalyticsInputError):
        to_utc("yesterday")
    with pytest.raises(AnalyticsInputError):
        to_utc(1.5)


def test_a_sap_row_becomes_a_fill() -> None:
    fill = fill_from_mapping(SAP_ROW, seq=843)
    assert fill == Fill(
        execution_id="25823deeb24b",
        symbol="BTC/USDT Perpetual",
        side=Side.SELL,
        quantity=Decimal("1.110223024625E-16"),
        price=Decimal("91759.3"),
        commission=Decimal("0.0"),
        time=T0,
        seq=843,
    )
    assert fill.signed_quantity == Decimal("-1.110223024625E-16")


def test_commission_and_fee_are_two_charges_and_add_up() -> None:
    row = {**SAP_ROW, "commission": "0.25", "fee": 0.1, "side": "buy", "quantity": "2"}
    fill = fill_from_mapping(row, seq=0)
    assert fill.commission == Decimal("0.35")  # 0.25 + 0.1
    assert fill.side is Side.BUY


def test_fills_from_rows_numbers_them_in_arrival_order() -> None:
    fills = fills_from_rows([SAP_ROW, {**SAP_ROW, "execution_id": "b"}], first_seq=10)
    assert [f.seq for f in fills] == [10, 11]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"side": "SHORT"}, "side"),
        ({"side": None}, "side"),
        ({"quantity": -1}, "quantity"),
        ({"price": "n/a"}, "price"),
        ({"exec_time": None}, "exec_time"),
        ({"symbol": None}, "symbol"),
    ],
)
def test_bad_rows_name_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(AnalyticsInputError) as caught:
        fill_from_mapping({**SAP_ROW, **change}, seq=0)
    assert caught.value.field == field


def test_a_fill_needs_an_aware_utc_time() -> None:
    with pytest.raises(AnalyticsInputError):
        Fill("x", "S", Side.BUY, Decimal(1), Decimal(1), Decimal(0), dt.datetime(2025, 1, 1), 0)
    paris = dt.timezone(dt.timedelta(hours=1))
    with pytest.raises(AnalyticsInputError):
        Fill("x", "S", Side.BUY, Decimal(1), Decimal(1), Decimal(0), T0.astimezone(paris), 0)


def test_a_bar_row_becomes_a_bar() -> None:
    row = {
        "symbol": "DEMO_TICKER",
        "timestamp": "2025-12-04 10:45:41.512348",
        "open": 99.41,
        "high": 99.47,
        "low": 99.25,
        "close": 99.36,
        "volume": 126.0,
    }
    bar = bar_from_mapping(row)
    assert bar == Bar(
        "DEMO_TICKER",
        dt.datetime(2025, 12, 4, 10, 45, 41, 512348, tzinfo=dt.UTC),
        Decimal("99.41"),
        Decimal("99.47"),
        Decimal("99.25"),
        Decimal("99.36"),
    )
    with pytest.raises(AnalyticsInputError):
        bar_from_mapping({**row, "low": 100.0})
    with pytest.raises(AnalyticsInputError):
        bar_from_mapping({**row, "timestamp": None})
