"""Fills and bars as the analytics core sees them, and their converters from plain rows.

Money and quantities are :class:`~decimal.Decimal`, never ``float``. Rows
come from the ingest projection (money stored as decimal text) or from JSON
exports (money as JSON numbers, which Python reads as ``float``). A float is
converted through its shortest repr, ``Decimal(str(x))``, so ``0.1`` becomes
``Decimal("0.1")`` (what the sender wrote), not the binary-exact
``0.1000000000000000055511151231257827...``.

Times are aware UTC :class:`~datetime.datetime` values (microsecond precision,
which the exports carry; epoch milliseconds would lose it). Naive times are
read as UTC, as everywhere in tradewire.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Final

import msgspec

from tradewire.errors import TradewireError

__all__ = [
    "AnalyticsInputError",
    "Bar",
    "Fill",
    "Side",
    "bar_from_mapping",
    "fill_from_mapping",
    "fills_from_rows",
    "to_decimal",
    "to_utc",
]

_ZERO: Final = Decimal(0)
_UTC_OFFSET: Final = dt.timedelta(0)


class AnalyticsInputError(TradewireError, ValueError):
    """A row or value the analytics core cannot read.

    ``field`` names the offending field, ``value`` is what was given.
    """

    def __init__(self, message: str, *, field: str, value: object = None):
        super().__init__(message)
        self.field = field
        self.value = value


class Side(StrEnum):
    """Direction of a fill."""

    BUY = "BUY"
    SELL = "SELL"


class Fill(msgspec.Struct, frozen=True, gc=False):
    """One execution of ``quantity`` at ``price``.

    ``commission`` is the total cost charged for the fill (a negative value is
    a rebate). ``seq`` is the arrival order: the analytics process fills in
    ``seq`` order, so fills with equal ``time`` keep the order they arrived in.
    ``quantity`` may be zero or float dust; see
    :class:`~tradewire.analytics.fifo.QuantityTolerance` for what happens to it.
    """

    execution_id: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    commission: Decimal
    time: dt.datetime
    seq: int

    def __post_init__(self) -> None:
        if not self.quantity.is_finite() or self.quantity < _ZERO:
            raise AnalyticsInputError(
                f"fill {self.execution_id!r}: quantity must be a finite number >= 0",
                field="quantity",
                value=self.quantity,
            )
        _require_finite(self.price, "price")
        _require_finite(self.commission, "commission")
        _require_utc(self.time, "time")

    @property
    def signed_quantity(self) -> Decimal:
        """``quantity`` for a buy, ``-quantity`` for a sell."""
        return self.quantity if self.side is Side.BUY else -self.quantity


class Bar(msgspec.Struct, frozen=True):
    """One OHLC bar of ``symbol`` opening at ``ts`` (aware UTC)."""

    symbol: str
    ts: dt.datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal

    def __post_init__(self) -> None:
        for name in ("open", "high", "low", "close"):
            _require_finite(getattr(self, name), name)
        if self.low > self.high:
            raise AnalyticsInputError("bar low is above its high", field="low", value=self.low)
        _require_utc(self.ts, "ts")


def _require_finite(value: Decimal, field: str) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise AnalyticsInputError(f"{field} must be a finite Decimal", field=field, value=value)


def _require_utc(value: dt.datetime, field: str) -> None:
    if not isinstance(value, dt.datetime) or value.utcoffset() != _UTC_OFFSET:
        raise AnalyticsInputError(
            f"{field} must be an aware UTC datetime", field=field, value=value
        )


# --- converters ------------------------------------------------------------------------------


def to_decimal(value: object, field: str = "value") -> Decimal:
    """``value`` (Decimal, int, float or decimal text) as a finite Decimal.

    Floats go through their shortest repr (``0.1`` -> ``Decimal("0.1")``).
    """
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise AnalyticsInputError(f"{field} is a boolean, not a number", field=field, value=value)
    elif isinstance(value, int | float):
        result = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise AnalyticsInputError(
                f"{field} {value!r} is not a decimal number", field=field, value=value
            ) from None
    else:
        raise AnalyticsInputError(f"{field} has no numeric value", field=field, value=value)
    if not result.is_finite():
        raise AnalyticsInputError(f"{field} is not finite", field=field, value=value)
    return result


def to_utc(value: object, field: str = "time") -> dt.datetime:
    """``value`` (ISO-8601 text, datetime, or epoch milliseconds) as an aware UTC datetime.

    Naive text and naive datetimes are UTC.
    """
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise AnalyticsInputError(
                f"{field} {value!r} is not an ISO-8601 time", field=field, value=value
            ) from None
    elif isinstance(value, int) and not isinstance(value, bool):
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=value)
    if not isinstance(value, dt.datetime):
        raise AnalyticsInputError(f"{field} has no time value", field=field, value=value)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _side(value: object) -> Side:
    try:
        return Side(value.strip().upper() if isinstance(value, str) else "")
    except ValueError:
        raise AnalyticsInputError(
            f"side {value!r} is neither BUY nor SELL", field="side", value=value
        ) from None


def _optional_money(row: Mapping[str, object], key: str) -> Decimal:
    value = row.get(key)
    return _ZERO if value is None else to_decimal(value, key)


def fill_from_mapping(row: Mapping[str, object], *, seq: int) -> Fill:
    """A :class:`Fill` from a plain row (ingest projection or export shape).

    Reads ``execution_id``, ``symbol``, ``side``, ``quantity``, ``price``,
    ``exec_time`` (or ``time``), and the optional costs ``commission`` and
    ``fee``: the fill's commission is their sum, because the ingest wire
    carries them as two separate charges (``fee_currency`` is not converted).
    Raises :class:`AnalyticsInputError` on a missing or unreadable field.
    """
    for key in ("execution_id", "symbol", "side", "quantity", "price"):
        if row.get(key) is None:
            raise AnalyticsInputError(f"fill row has no {key}", field=key)
    time = row.get("exec_time", row.get("time"))
    if time is None:
        raise AnalyticsInputError("fill row has no exec_time", field="exec_time")
    return Fill(
        execution_id=str(row["execution_id"]),
        symbol=str(row["symbol"]),
        side=_side(row["side"]),
        quantity=to_decimal(row["quantity"], "quantity"),
        price=to_decimal(row["price"], "price"),
        commission=_optional_money(row, "commission") + _optional_money(row, "fee"),
        time=to_utc(time, "exec_time"),
        seq=seq,
    )


def fills_from_rows(rows: Iterable[Mapping[str, object]], *, first_seq: int = 0) -> list[Fill]:
    """Fills from rows in arrival order; ``seq`` counts up from ``first_seq``."""
    return [fill_from_mapping(row, seq=first_seq + n) for n, row in enumerate(rows)]


def bar_from_mapping(row: Mapping[str, object]) -> Bar:
    """A :class:`Bar` from a plain row: ``symbol``, ``ts``/``timestamp``/``ts_utc``, OHLC."""
    ts = row.get("ts", row.get("timestamp", row.get("ts_utc")))
    if ts is None:
        raise AnalyticsInputError("bar row has no ts", field="ts")
    return Bar(
        symbol=str(row.get("symbol", "")),
        ts=to_utc(ts, "ts"),
        open=to_decimal(row.get("open"), "open"),
        high=to_decimal(row.get("high"), "high"),
        low=to_decimal(row.get("low"), "low"),
        close=to_decimal(row.get("close"), "close"),
    )
