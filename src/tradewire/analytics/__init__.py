"""Trade analytics: the pure core.

Fills in, values out: :class:`FifoLotBook` matches one symbol's fills into
FIFO :class:`Leg` values, :class:`TradeBook` groups them into flat-to-flat
:class:`Trade` episodes incrementally (emitting :class:`TradeEvent` values
for a bridge to turn into user events), and :func:`compute_run_metrics`
summarises closed trades. No I/O, no asyncio; money is ``Decimal``. See
``docs/concepts/analytics.md``.
"""

from tradewire.analytics.fifo import (
    DEFAULT_TOLERANCE,
    DustTally,
    FifoLotBook,
    FillMatch,
    Leg,
    OpenLot,
    PositionSide,
    QuantityTolerance,
)
from tradewire.analytics.fills import (
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
from tradewire.analytics.metrics import EquityPoint, RunMetrics, compute_run_metrics
from tradewire.analytics.trades import (
    OpenPosition,
    Trade,
    TradeBook,
    TradeBookCounters,
    TradeBookState,
    TradeEvent,
    TradeEventKind,
    replay_order,
)

__all__ = [
    "DEFAULT_TOLERANCE",
    "AnalyticsInputError",
    "Bar",
    "DustTally",
    "EquityPoint",
    "FifoLotBook",
    "Fill",
    "FillMatch",
    "Leg",
    "OpenLot",
    "OpenPosition",
    "PositionSide",
    "QuantityTolerance",
    "RunMetrics",
    "Side",
    "Trade",
    "TradeBook",
    "TradeBookCounters",
    "TradeBookState",
    "TradeEvent",
    "TradeEventKind",
    "bar_from_mapping",
    "compute_run_metrics",
    "fill_from_mapping",
    "fills_from_rows",
    "replay_order",
    "to_decimal",
    "to_utc",
]
