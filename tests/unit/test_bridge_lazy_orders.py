"""The bridge's lazy order state gives exactly what building it eagerly gave.

``IngestBridge._order`` remembers the wire order and builds its ``OrderInfo``
only when an event or a later fill reads it. ``_EagerBridge`` below is the
former implementation (an ``OrderInfo`` per order record): for any sequence
of order, status, fill, batch and run-end records, under any mix of live and
quiet owners, both must produce the same events and the same run state.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tradewire.bridge import IngestBridge, OrderInfo, RunSnapshot, Translation
from tradewire.bridge.events import epoch_ms
from tradewire.bridge.translate import (
    _STATUS_EVENTS,
    _money,
    _opt,
    _order_info,
    _Run,
    base_order_id,
)
from tradewire.delivery.model import Event
from tradewire.ingest.order_status import normalize_status
from tradewire.wire import Envelope, EventType
from tradewire.wire.envelope import decode_envelope
from tradewire.wire.ingest_payloads import Order, Timestamp

RUN = "r1"
UUID = "8771ed08-1f0b-421b-917e-4b4c1f0bf99c"


class _EagerBridge(IngestBridge):
    """The bridge as it was: an ``OrderInfo`` built for every order record."""

    def _order(self, run: _Run, order: Order, stamp: Timestamp) -> list[Event]:
        when = stamp.utc
        key = base_order_id(order.order_id)
        status = normalize_status(_opt(order.status))
        known = run.orders.get(key)
        info = OrderInfo(
            symbol=order.symbol,
            side=order.side.upper(),
            order_type=_opt(order.order_type) or "",
            quantity=Decimal(order.quantity),
            price=_money(order.price),
            strategy_id=_opt(order.strategy_id) or "",
            status=status,
        )
        run.orders[key] = run.orders[order.order_id] = info
        kinds: list[EventType] = []
        if known is None:
            kinds.append(EventType.ORDER_PLACED)
        kind = _STATUS_EVENTS.get(status)
        if kind is not None and (known is None or _order_info(known).status != status):
            kinds.append(kind)
        # The event itself is built as the bridge builds it: what differs is when.
        events: list[Event] = []
        for kind in kinds:
            if not self.rules[kind].enabled:
                continue
            event = self._order_event(run, order, info, key, kind, epoch_ms(when))
            if event is not None:
                events.append(event)
        return events


# -- records ---------------------------------------------------------------------------------

order_ids = st.sampled_from(["o1", "o2", UUID, f"{UUID}-1", f"{UUID}-2", "o1-x"])
statuses = st.sampled_from(
    [None, "", "NEW", "open", "Partially Filled", "REJECTED", "cancelled", "CANCELED", "EXPIRED"]
)
numbers = st.sampled_from(["1", "0.5", "2", "100", "101.25", 3, 0.1])


def _optional(field: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), values.map(lambda v: {field: v}))


@st.composite
def order_items(draw: st.DrawFn) -> dict[str, Any]:
    item = {
        "order_id": draw(order_ids),
        "symbol": draw(st.sampled_from(["BTC", "ETH"])),
        "side": draw(st.sampled_from(["BUY", "sell", "Buy"])),
        "quantity": draw(numbers),
    }
    item |= draw(_optional("status", statuses))
    item |= draw(_optional("order_type", st.sampled_from(["LIMIT", "MARKET", ""])))
    item |= draw(_optional("price", st.one_of(st.none(), numbers)))
    item |= draw(_optional("strategy_id", st.sampled_from(["s1", "", None])))
    return item


@st.composite
def execution_items(draw: st.DrawFn) -> dict[str, Any]:
    item = {
        "execution_id": f"x{draw(st.integers(1, 8))}",
        "order_id": draw(order_ids),
        "quantity": draw(numbers),
        "price": draw(numbers),
    }
    item |= draw(_optional("symbol", st.sampled_from(["BTC", "ETH"])))
    item |= draw(_optional("side", st.sampled_from(["BUY", "SELL"])))
    return item


def _envelope(event_type: str, data: dict[str, Any], n: int) -> Envelope:
    raw = {
        "msg_id": f"m{n}", "msg_type": "ingest_event", "timestamp": "2026-01-05T10:00:00Z",
        "source": "conn", "target": None,
        "payload": {
            "run_id": RUN, "event_type": event_type, "payload_json": data,
            "event_utc": f"2026-01-05T10:{n % 60:02d}:00Z",
        },
    }  # fmt: skip
    decoded = decode_envelope(json.dumps(raw).encode())
    assert isinstance(decoded, Envelope), decoded
    return decoded


@st.composite
def records(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    kind = draw(st.sampled_from(["order", "order", "order", "execution", "batch", "end"]))
    if kind == "order":
        return "order", draw(order_items())
    if kind == "execution":
        return "execution", draw(execution_items())
    if kind == "end":
        return "strategy_event", {"event": "run_ended"}
    items = draw(
        st.lists(
            st.one_of(
                order_items().map(lambda i: {"event_type": "order", **i}),
                execution_items().map(lambda i: {"event_type": "execution", **i}),
            ),
            max_size=4,
        )
    )
    return "system_event", {"event": "batch_ingest", "events": items}


def _state(bridge: IngestBridge) -> tuple[object, ...]:
    run = bridge._runs[RUN]
    orders = {
        key: {name: getattr(_order_info(known), name) for name in OrderInfo.__slots__}
        for key, known in run.orders.items()
    }
    return orders, sorted(run.fills), run.next_seq, run.book.state()


def _snapshot() -> RunSnapshot:
    known = OrderInfo(symbol="ETH", side="SELL", quantity=Decimal(2), status="REJECTED")
    return RunSnapshot([], {f"{UUID}-1": known}, exchange="binance")


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(records(), st.booleans()), max_size=25),
    from_snapshot=st.booleans(),
)
def test_lazy_order_state_matches_the_eager_one(
    steps: list[tuple[tuple[str, dict[str, Any]], bool]], from_snapshot: bool
) -> None:
    lazy, eager = IngestBridge(), _EagerBridge()
    for bridge in (lazy, eager):
        bridge.load_run(RUN, "alice", _snapshot() if from_snapshot else RunSnapshot([], {}))
    for n, ((event_type, data), live) in enumerate(steps):
        envelope = _envelope(event_type, data, n)
        got = lazy.translate_loaded(n, "alice", envelope, informational=live)
        want = eager.translate(n, "alice", envelope, informational=live)
        assert got == want
        assert _state(lazy) == _state(eager)


def test_an_unloaded_run_is_left_to_load_and_nothing_changes() -> None:
    bridge = IngestBridge()
    envelope = _envelope(
        "order", {"order_id": "o1", "symbol": "B", "side": "BUY", "quantity": 1}, 1
    )
    assert bridge.translate_loaded(1, "alice", envelope) is None
    assert bridge.unknown_run(envelope) == RUN
    bridge.load_run(RUN, "alice", RunSnapshot([], {}))
    out = bridge.translate_loaded(2, "alice", envelope)
    assert isinstance(out, Translation) and len(out.events) == 1
    assert bridge.translate_loaded(3, None, envelope) == Translation()


def test_a_quiet_order_builds_no_order_info_until_a_fill_reads_it() -> None:
    bridge = IngestBridge()
    bridge.load_run(RUN, "alice", RunSnapshot([], {}))
    data = {"order_id": "o1", "symbol": "BTC", "side": "buy", "quantity": "1", "price": "9"}
    assert bridge.translate(1, "alice", _envelope("order", data, 1), informational=False) == (
        Translation()
    )
    assert isinstance(bridge._runs[RUN].orders["o1"], Order)
    fill = {"execution_id": "x1", "order_id": "o1", "quantity": "1", "price": "9"}
    events = bridge.translate(2, "alice", _envelope("execution", fill, 2)).events
    payload = json.loads(events[0].payload)
    assert (payload["side"], payload["price"], payload["quantity"]) == ("BUY", "9", "1")
    assert events[0].timestamp_ms == epoch_ms(dt.datetime(2026, 1, 5, 10, 2, tzinfo=dt.UTC))
