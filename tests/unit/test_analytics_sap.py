"""Trade reconstruction of real Quantower fills (shared/data/sap, see its README).

Per ``strategy_id`` session, in arrival (row) order. The platform's own
lot-level reconstruction (``trades.jsonl``: one row per FIFO lot match, fees
ignored) counts 425, 475, 450, 50 and 25 trades for the five BTC sessions;
two of them are *dust trades* of 1.110223024625e-16 BTC in sessions
``4246ba6b`` and ``da348396``. We absorb that dust fill (no leg, no trade), so
those two sessions have one FIFO leg fewer (474 and 449); every other leg
matches the platform's lot-level trades one for one.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from decimal import Context, localcontext
from decimal import Decimal as D
from typing import Any

import pytest

from tests.conftest import SAP_DATA
from tests.unit.test_analytics_properties import book_pnl, cash_flow_pnl, last_prices
from tradewire.analytics import (
    FifoLotBook,
    Fill,
    Leg,
    TradeBook,
    bar_from_mapping,
    fills_from_rows,
)

# SAP_DATA is Path(__file__).parents[2] / ".." / "shared" / "data" / "sap" (or $TRADEWIRE_SHARED)
DUST_ID_SUFFIX = "25823deeb24b"  # the 1.110223024625e-16 SELL of sessions 4246ba6b, da348396
PLATFORM_LOT_TRADES = {
    "StrategyExporterTemplate": 425,
    "4246ba6b-a515-4d0d-9531-3cdcb5d949ab": 475,
    "da348396-46dd-43a5-ba9b-25b19502c979": 450,
    "60902d64-3d61-4846-852c-fc8cea600cc6": 50,
    "ba069026-f04a-4cc2-a185-d64c08a3956e": 25,
}
DUST_SESSIONS = {"4246ba6b-a515-4d0d-9531-3cdcb5d949ab", "da348396-46dd-43a5-ba9b-25b19502c979"}


def _rows(name: str) -> list[dict[str, Any]]:
    path = SAP_DATA / name
    if not path.is_file():
        pytest.fail(
            f"real SAP data missing: {path} not found. It ships in shared/data/sap next to "
            "the repo (set TRADEWIRE_SHARED to point elsewhere); these tests must not skip."
        )
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def sessions() -> dict[str, list[Fill]]:
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in _rows("executions.jsonl"):
        by_session[row["strategy_id"]].append(row)
    return {sid: fills_from_rows(rows) for sid, rows in by_session.items()}


@pytest.fixture(scope="module")
def books(sessions: dict[str, list[Fill]]) -> dict[str, TradeBook]:
    return {sid: TradeBook.rebuild(fills) for sid, fills in sessions.items()}


def legs(fills: list[Fill]) -> list[Leg]:
    """Every FIFO leg of a session (closed trades and any open episode)."""
    book = FifoLotBook("BTC/USDT Perpetual")
    return [leg for f in fills for leg in book.apply(f).legs]


def test_the_data_is_there(sessions: dict[str, list[Fill]]) -> None:
    assert sum(len(f) for sid, f in sessions.items() if sid in PLATFORM_LOT_TRADES) == 2850
    assert set(PLATFORM_LOT_TRADES) <= set(sessions)


@pytest.mark.parametrize("session", sorted(PLATFORM_LOT_TRADES))
def test_fifo_legs_match_the_platform_lot_trades(
    session: str, sessions: dict[str, list[Fill]], books: dict[str, TradeBook]
) -> None:
    ours = legs(sessions[session])
    assert ours == [leg for t in books[session].trades for leg in t.legs]  # none left open
    dust_trades = 1 if session in DUST_SESSIONS else 0
    assert len(ours) == PLATFORM_LOT_TRADES[session] - dust_trades
    theirs = [t for t in _rows("trades.jsonl") if t["strategy_id"] == session]
    assert len(theirs) == PLATFORM_LOT_TRADES[session]

    def key(entry: str, exit_: str, side: str, qty: float, p0: float, p1: float) -> tuple[Any, ...]:
        return (entry[:19], exit_[:19], side, round(qty, 9), p0, p1)

    platform = Counter(
        key(t["entry_time"], t["exit_time"], t["side"], t["quantity"], t["entry_price"],
            t["exit_price"])
        for t in theirs
    )  # fmt: skip
    mine = Counter(
        key(str(leg.entry_time)[:19], str(leg.exit_time)[:19],
            "BUY" if leg.side == "LONG" else "SELL", float(leg.quantity),
            float(leg.entry_price), float(leg.exit_price))
        for leg in ours
    )  # fmt: skip
    assert not mine - platform
    missing = platform - mine
    assert sum(missing.values()) == dust_trades
    assert all(k[3] == 0.0 for k in missing)  # only the dust trade: 1.1e-16 rounds to 0
    # gross PnL agrees with the platform's float sum to float precision
    assert float(sum((leg.gross_pnl for leg in ours), D(0))) == pytest.approx(
        sum(t["pnl_gross"] for t in theirs), abs=1e-6
    )


@pytest.mark.parametrize("session", sorted(PLATFORM_LOT_TRADES))
def test_dust_makes_no_trade_and_pnl_is_the_cash_flow(
    session: str, sessions: dict[str, list[Fill]], books: dict[str, TradeBook]
) -> None:
    fills, book = sessions[session], books[session]
    counters = book.counters
    if session in DUST_SESSIONS:
        # the dust sell is absorbed; the 0.1869999999999999 sell after it snaps to the 0.187 lot
        assert (counters.dust_fills, counters.snaps) == (1, 1)
        ids = {i for leg in legs(fills) for i in (leg.open_fill_id, leg.close_fill_id)}
        assert not any(i.endswith(DUST_ID_SUFFIX) for i in ids)
    else:
        assert (counters.dust_fills, counters.snaps) == (0, 0)
    assert all(leg.quantity >= D("0.1") for leg in legs(fills))
    # quantity conservation: what was bought minus sold is open, or was absorbed as dust
    (tally,) = book.dust()
    with localcontext(Context(prec=100)):
        signed = sum((f.signed_quantity for f in fills), D(0))
        assert book.position("BTC/USDT Perpetual") == signed - tally.quantity
    assert abs(tally.quantity) < D("1e-15")
    # PnL: closed trades + open position + absorbed dust == cash-flow accounting, exactly
    assert book_pnl(book) == cash_flow_pnl(fills, last_prices(fills))
    assert abs(tally.pnl(book.last_price("BTC/USDT Perpetual") or D(0))) < D("1e-9")


def test_two_replays_in_one_session_are_kept_in_arrival_order(books: dict[str, TradeBook]) -> None:
    # StrategyExporterTemplate holds two runs (500 then 350 fills) whose clocks both start
    # at 2025-11-19 23:01: one step back in time, and no trade spans it.
    book = books["StrategyExporterTemplate"]
    assert book.counters.time_regressions == 1
    assert all(t.duration.total_seconds() >= 0 for t in book.trades)
    assert len(book.trades) == 425 and book.open_positions() == ()


def test_mae_and_mfe_match_the_platform_on_its_demo_bars() -> None:
    fills = fills_from_rows(
        r for r in _rows("executions.jsonl") if r["strategy_id"] == "DEMO_STRAT"
    )
    bars = [bar_from_mapping(row) for row in _rows("bars.jsonl")]
    book = TradeBook.rebuild(fills, bars)
    theirs = {
        (t["entry_time"], t["exit_time"]): t
        for t in _rows("trades.jsonl")
        if t["strategy_id"] == "DEMO_STRAT"
    }
    assert len(book.trades) == 10
    for trade in book.trades:
        platform = theirs[(_text(trade.entry_time), _text(trade.exit_time))]
        assert trade.mae is not None and trade.mfe is not None
        assert float(trade.mae) == pytest.approx(platform["mae"], abs=1e-9)
        assert float(trade.mfe) == pytest.approx(platform["mfe"], abs=1e-9)
        assert float(trade.net_pnl) == pytest.approx(platform["pnl_net"], abs=1e-9)


def _text(time: Any) -> str:
    return str(time.strftime("%Y-%m-%d %H:%M:%S.%f"))
