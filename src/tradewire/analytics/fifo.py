"""FIFO lot matching of one symbol's fills.

Theory of operation
-------------------
A :class:`FifoLotBook` holds the open lots of one symbol, oldest first, all
on one side (long lots or short lots, never both). A fill on the side of the
lots (or into a flat book) opens a new lot. A fill on the other side closes
lots oldest first; each (lot, closing fill) pair is a :class:`Leg`. When the
fill is larger than everything open, it closes all lots and its rest opens a
lot on the other side: a reversal through zero is one closing part and one
opening part of the same fill.

Commissions are allocated pro rata to quantity, and always exactly: each
share is rounded to 12 decimal places and the last part takes what is left,
so the parts add up to the whole to the last digit. A lot carries the
unallocated part of its opening commission; a leg that closes ``q`` of a lot
of ``Q`` takes ``q / Q`` of it. A closing fill's commission is split the same
way between its legs and its opening rest.

Quantities are compared with a :class:`QuantityTolerance`, so that float
noise from an exporter (``0.1869999999999999`` closing a lot of ``0.187``, a
``1.110223024625e-16`` fill) neither leaves a dust lot open nor becomes a
trade. Two things are *absorbed*, never silently dropped:

* a **dust fill** (quantity at or below the absolute tolerance) changes no
  lot and makes no leg;
* a **snap**: when a fill's remaining quantity and the oldest lot's are the
  same within tolerance, the lot is closed in full (the leg has the lot's
  quantity) and the difference, which may be negative, is absorbed from the
  fill.

Every absorbed quantity is recorded in the book's :class:`DustTally`
(quantity, notional and commission), so the accounting stays exact:
``realized + unrealized + dust.pnl(mark)`` equals the cash-flow PnL of the
fills to the last digit. Open lots are therefore always larger than the
tolerance, and the book is flat exactly when it has no lots.

Arithmetic runs in the caller's :mod:`decimal` context (28 digits by
default); sums and products are exact as long as they fit in it. Values are
frozen ``msgspec.Struct`` types rather than dataclasses because a book makes
a few per fill (a frozen dataclass costs ~15x as much to create).
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from decimal import Decimal
from enum import StrEnum
from typing import Final

import msgspec

from tradewire.analytics.fills import Fill, Side

__all__ = [
    "DEFAULT_TOLERANCE",
    "DustTally",
    "FifoLotBook",
    "FillMatch",
    "Leg",
    "OpenLot",
    "PositionSide",
    "QuantityTolerance",
]

_ZERO: Final = Decimal(0)
_SHARE_QUANTUM: Final = Decimal("1e-12")


class PositionSide(StrEnum):
    """Direction of a position, a lot, a leg or a trade."""

    LONG = "LONG"
    SHORT = "SHORT"


class QuantityTolerance(msgspec.Struct, frozen=True):
    """When two quantities are the same, and when a quantity is dust.

    ``a`` and ``b`` are the same when ``|a - b| <= max(absolute, relative *
    max(a, b))``. A fill quantity ``<= absolute`` is dust. The defaults sit
    far above float noise (about ``1e-16`` relative, a few ulps after the
    exporter's arithmetic) and far below any real size: ``absolute = 1e-9``,
    ``relative = 1e-12``, so even a lot of a billion tokens snaps only on a
    difference below a thousandth of a token.
    """

    absolute: Decimal = Decimal("1e-9")
    relative: Decimal = Decimal("1e-12")

    def __post_init__(self) -> None:
        if self.absolute < _ZERO or self.relative < _ZERO:
            raise ValueError("tolerances must be >= 0")

    def is_dust(self, quantity: Decimal) -> bool:
        """Whether ``quantity`` (>= 0) is too small to be a trade."""
        return quantity <= self.absolute

    def same(self, a: Decimal, b: Decimal) -> bool:
        """Whether ``a`` and ``b`` (both >= 0) are equal within tolerance."""
        return abs(a - b) <= max(self.absolute, self.relative * max(a, b))


DEFAULT_TOLERANCE: Final = QuantityTolerance()


class Leg(msgspec.Struct, frozen=True, gc=False):
    """``quantity`` of one lot closed by one fill (one FIFO match).

    ``commission`` is the lot's share of its opening fill's commission plus
    this leg's share of the closing fill's commission.
    """

    symbol: str
    side: PositionSide
    open_fill_id: str
    close_fill_id: str
    quantity: Decimal
    entry_price: Decimal
    exit_price: Decimal
    entry_time: dt.datetime
    exit_time: dt.datetime
    gross_pnl: Decimal
    commission: Decimal

    @property
    def net_pnl(self) -> Decimal:
        """``gross_pnl - commission``."""
        return self.gross_pnl - self.commission


class OpenLot(msgspec.Struct, frozen=True):
    """An open lot: what is left of an opening fill."""

    side: PositionSide
    fill_id: str
    time: dt.datetime
    price: Decimal
    quantity: Decimal
    commission: Decimal
    """Opening commission not yet charged to a leg."""


class FillMatch(msgspec.Struct, frozen=True, gc=False):
    """What one fill did to a :class:`FifoLotBook`.

    ``legs`` are the lots it closed, and ``closed``, ``gross_pnl`` and
    ``commission`` their total quantity, gross PnL and commission.
    ``opened`` is the quantity it opened (after closing everything, for a
    reversal), ``absorbed`` the quantity taken out of it as dust (in the
    fill's own direction; negative when a snap closed a lot slightly larger
    than the fill; all of it for a dust fill). ``dust`` says the whole fill
    was dust. Always ``closed + opened + absorbed == fill.quantity``.
    Positions are signed (long > 0).
    """

    fill: Fill
    legs: tuple[Leg, ...]
    closed: Decimal
    gross_pnl: Decimal
    commission: Decimal
    opened: Decimal
    absorbed: Decimal
    position_before: Decimal
    position_after: Decimal
    dust: bool = False


class DustTally(msgspec.Struct, frozen=True):
    """Everything a book absorbed as dust, for exact accounting.

    ``fills`` counts whole dust fills, ``snaps`` the nonzero snaps. ``quantity``
    (signed, buys > 0) and ``notional`` (signed ``quantity * price``) are the
    absorbed amounts, ``commission`` the commission of dust fills.
    """

    symbol: str
    fills: int = 0
    snaps: int = 0
    quantity: Decimal = _ZERO
    notional: Decimal = _ZERO
    commission: Decimal = _ZERO

    def pnl(self, mark: Decimal) -> Decimal:
        """The absorbed amounts' cash-flow PnL, held and marked at ``mark``."""
        return self.quantity * mark - self.notional - self.commission


class _Lot:
    """A mutable open lot (private; :class:`OpenLot` is its public snapshot)."""

    __slots__ = ("commission", "fill_id", "price", "quantity", "time")

    def __init__(
        self,
        fill_id: str,
        time: dt.datetime,
        price: Decimal,
        quantity: Decimal,
        commission: Decimal,
    ) -> None:
        self.fill_id = fill_id
        self.time = time
        self.price = price
        self.quantity = quantity
        self.commission = commission


class FifoLotBook:
    """The open lots of one symbol and the FIFO matching of its fills.

    Feed fills in arrival order with :meth:`apply`. See the module docstring.
    """

    def __init__(self, symbol: str, tolerance: QuantityTolerance = DEFAULT_TOLERANCE) -> None:
        self.symbol = symbol
        self.tolerance = tolerance
        self._lots: deque[_Lot] = deque()
        self._long = True
        self._position = _ZERO
        self._dust = DustTally(symbol)

    @property
    def position(self) -> Decimal:
        """The signed open quantity (long > 0, short < 0, 0 when flat)."""
        return self._position

    @property
    def side(self) -> PositionSide | None:
        """The side of the open lots, ``None`` when flat."""
        if not self._lots:
            return None
        return PositionSide.LONG if self._long else PositionSide.SHORT

    @property
    def lots(self) -> tuple[OpenLot, ...]:
        """The open lots, oldest first."""
        side = self.side or PositionSide.LONG
        return tuple(
            OpenLot(side, lot.fill_id, lot.time, lot.price, lot.quantity, lot.commission)
            for lot in self._lots
        )

    @property
    def dust(self) -> DustTally:
        """What this book has absorbed so far."""
        return self._dust

    def apply(self, fill: Fill) -> FillMatch:
        """Match ``fill`` against the open lots; see the module docstring."""
        before = self._position
        if fill.quantity <= self.tolerance.absolute:  # QuantityTolerance.is_dust, inlined
            self._absorb_dust_fill(fill)
            return FillMatch(
                fill, (), _ZERO, _ZERO, _ZERO, _ZERO, fill.quantity, before, before, True
            )
        buying = fill.side is Side.BUY
        if self._lots and self._long is not buying:
            return self._close(fill, buying, before)
        self._open(fill, buying, fill.quantity, fill.commission)
        return FillMatch(
            fill, (), _ZERO, _ZERO, _ZERO, fill.quantity, _ZERO, before, self._position
        )

    def _close(self, fill: Fill, buying: bool, before: Decimal) -> FillMatch:
        """Close lots oldest first, then open the rest of the fill (a reversal).

        The hot loop of the package, so :meth:`QuantityTolerance.same` and the
        pro-rata shares are inlined. A share is rounded to 12 decimals: that
        keeps ``amount - share`` short, so taking shares one after another
        stays exact (an unrounded 28-digit share could make the rest need more
        digits than the context has).
        """
        quantity, commission, absorbed = fill.quantity, fill.commission, _ZERO
        gross = charged = _ZERO
        legs: list[Leg] = []
        lots, absolute, relative = self._lots, self.tolerance.absolute, self.tolerance.relative
        long, price, fill_id, time = self._long, fill.price, fill.execution_id, fill.time
        symbol, side = self.symbol, PositionSide.LONG if long else PositionSide.SHORT
        while lots and quantity:
            lot = lots[0]
            size = lot.quantity
            gap = quantity - size
            spread = gap if gap > _ZERO else -gap
            if spread <= absolute or spread <= relative * (quantity if gap > _ZERO else size):
                # the same quantity: close the whole lot, absorb the gap
                take, opening, closing, absorbed = size, lot.commission, commission, gap
                lots.popleft()
                quantity = commission = _ZERO
            elif gap > _ZERO:  # the fill closes the whole lot and goes on
                take, opening, closing = size, lot.commission, _ZERO
                if commission:
                    closing = (commission * size / quantity).quantize(_SHARE_QUANTUM)
                lots.popleft()
                quantity = gap
                commission -= closing
            else:  # the fill closes part of the lot
                take, opening, closing = quantity, _ZERO, commission
                if lot.commission:
                    opening = (lot.commission * quantity / size).quantize(_SHARE_QUANTUM)
                lot.quantity = -gap
                lot.commission -= opening
                quantity = commission = _ZERO
            pnl = take * (price - lot.price if long else lot.price - price)
            cost = opening + closing
            legs.append(
                Leg(
                    symbol,
                    side,
                    lot.fill_id,
                    fill_id,
                    take,
                    lot.price,
                    price,
                    lot.time,
                    time,
                    pnl,
                    cost,
                )
            )
            gross += pnl
            charged += cost
        closed = fill.quantity - quantity - absorbed
        self._position += -closed if long else closed
        if absorbed:
            self._absorb_snap(fill, absorbed)
        if quantity:
            self._open(fill, buying, quantity, commission)
        return FillMatch(
            fill, tuple(legs), closed, gross, charged, quantity, absorbed, before, self._position
        )

    def _open(self, fill: Fill, buying: bool, quantity: Decimal, commission: Decimal) -> None:
        self._long = buying
        self._lots.append(_Lot(fill.execution_id, fill.time, fill.price, quantity, commission))
        self._position += quantity if buying else -quantity

    def _absorb_dust_fill(self, fill: Fill) -> None:
        dust = self._dust
        signed = fill.signed_quantity
        self._dust = DustTally(
            self.symbol,
            dust.fills + 1,
            dust.snaps,
            dust.quantity + signed,
            dust.notional + signed * fill.price,
            dust.commission + fill.commission,
        )

    def _absorb_snap(self, fill: Fill, absorbed: Decimal) -> None:
        dust = self._dust
        signed = absorbed if fill.side is Side.BUY else -absorbed
        self._dust = DustTally(
            self.symbol,
            dust.fills,
            dust.snaps + 1,
            dust.quantity + signed,
            dust.notional + signed * fill.price,
            dust.commission,
        )
