"""The pure ingest bridge: every mapping, derived ids, rules, replay equivalence."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradewire.analytics import TradeBook, compute_run_metrics, fills_from_rows
from tradewire.bridge import (
    DEFAULT_RULES,
    BridgeConfigError,
    IngestBridge,
    OrderInfo,
    RunInfo,
    RunSnapshot,
    base_order_id,
    parse_bridge_rules,
)
from tradewire.config import load_settings
from tradewire.delivery.model import ChannelPreference, ChannelType, Event, Priority
from tradewire.errors import ConfigError
from tradewire.ingest.heartbeats import HealthChange
from tradewire.wire import Envelope, EventType
from tradewire.wire.envelope import decode_envelope

RUN = "r1"
UID = "8771ed08-1f0b-421b-917e-4b4c1f0bf99c"


def env(payload: dict[str, Any], msg_id: str = "m1", kind: str = "ingest_event") -> Envelope:
    raw = {
        "msg_id": msg_id, "msg_type": kind, "timestamp": "2026-01-05T10:00:00Z",
        "source": "conn", "target": None, "payload": payload,
    }  # fmt: skip
    decoded = decode_envelope(json.dumps(raw).encode())
    assert isinstance(decoded, Envelope), decoded
    return decoded


def ingest(event_type: str, data: dict[str, Any], msg_id: str = "m1") -> Envelope:
    payload = {
        "run_id": RUN, "event_type": event_type, "event_utc": "2026-01-05T10:00:00Z",
        "payload_json": data,
    }  # fmt: skip
    return env(payload, msg_id)


def order(order_id: str, status: str = "NEW", side: str = "BUY") -> Envelope:
    data = {"order_id": order_id, "symbol": "BTC", "side": side, "quantity": "1", "status": status,
            "order_type": "LIMIT", "price": "100", "strategy_id": "s1"}  # fmt: skip
    return ingest("order", data, f"m-{order_id}-{status}")


def fill(n: int, side: str, price: str, qty: str = "1", order_id: str | None = None) -> Envelope:
    data = {"execution_id": f"x{n}", "order_id": order_id or f"o{n}", "side": side,
            "symbol": "BTC", "quantity": qty, "price": price, "commission": "0.1",
            "exec_time": f"2026-01-05T10:{n % 60:02d}:00Z"}  # fmt: skip
    return ingest("execution", data, f"m{n}")


def loaded(rules: Any = DEFAULT_RULES) -> IngestBridge:
    bridge = IngestBridge(rules)
    bridge.load_run(RUN, "alice", RunSnapshot([], {}))
    return bridge


def feed(bridge: IngestBridge, *envelopes: Envelope) -> list[Event]:
    out: list[Event] = []
    for n, e in enumerate(envelopes):
        out += bridge.translate(n + 1, "alice", e).events
    return out


def body(event: Event) -> dict[str, Any]:
    return json.loads(event.payload)  # type: ignore[no-any-return]


def test_a_new_order_is_placed_and_terminal_statuses_notify_once() -> None:
    bridge = loaded()
    events = feed(bridge, order("o1"), order("o1", "PARTIALLY_FILLED"), order("o2", "REJECTED"))
    events += feed(bridge, order("o3"), order("o3", "CANCELLED"), order("o3", "CANCELED"))
    events += feed(bridge, order("o4", "EXPIRED"))
    kinds = [(EventType(e.event_type).name, e.event_id) for e in events]
    assert kinds == [
        ("ORDER_PLACED", "ingest:order:o1:placed"),
        ("ORDER_PLACED", "ingest:order:o2:placed"),
        ("ORDER_REJECTED", "ingest:order:o2:rejected"),
        ("ORDER_PLACED", "ingest:order:o3:placed"),
        ("ORDER_CANCELLED", "ingest:order:o3:canceled"),
        ("ORDER_PLACED", "ingest:order:o4:placed"),
        ("ORDER_EXPIRED", "ingest:order:o4:expired"),
    ]
    assert events[0].priority is Priority.INFORMATIONAL and events[2].priority is Priority.CRITICAL
    assert body(events[2]) == {
        "order_id": "o2", "symbol": "BTC", "side": "BUY", "order_type": "LIMIT",
        "quantity": "1", "price": "100", "status": "REJECTED",
        "timestamp": 1767607200000, "strategy_id": "s1", "error_message": "order rejected",
    }  # fmt: skip


def test_fills_become_order_filled_and_position_events() -> None:
    bridge = loaded()
    events = feed(bridge, order("o1"), fill(1, "BUY", "100", order_id="o1"), fill(2, "SELL", "110"))
    kinds = [EventType(e.event_type).name for e in events]
    assert kinds == [
        "ORDER_PLACED",
        "ORDER_FILLED",
        "POSITION_OPENED",
        "ORDER_FILLED",
        "POSITION_CLOSED",
    ]
    filled = body(events[1])
    assert filled["fill_price"] == "100" and filled["fill_quantity"] == "1"
    assert filled["order_type"] == "LIMIT" and filled["strategy_id"] == "s1"
    assert events[1].event_id == "ingest:fill:x1" and events[1].priority is Priority.CRITICAL
    opened, closed = body(events[2]), body(events[4])
    assert opened["side"] == "LONG" and opened["entry_price"] == "100" and opened["size"] == "1"
    assert closed["realized_pnl"] == "9.8" and closed["entry_price"] == "100"
    assert events[4].event_id == "ingest:pos:x2:BTC:closed"


def test_a_resent_fill_is_applied_once() -> None:
    bridge = loaded()
    first = feed(bridge, fill(1, "BUY", "100"))
    again = bridge.translate(9, "alice", ingest("execution", {
        "execution_id": "x1", "order_id": "o1", "side": "BUY", "symbol": "BTC",
        "quantity": "1", "price": "100"}, "other-msg")).events  # fmt: skip
    assert len(first) == 2 and again == []
    book = bridge.book(RUN)
    assert book is not None and book.position("BTC") == 1


def test_suffixed_exporter_order_ids_are_found_from_the_bare_uuid() -> None:
    assert base_order_id(f"{UID}-3") == UID and base_order_id(UID) == UID
    assert base_order_id("o1-2") == "o1-2"
    bridge = loaded()
    exec_data = {"execution_id": "e", "order_id": UID, "quantity": "2", "price": "5"}
    events = feed(bridge, order(f"{UID}-0", side="SELL"), ingest("execution", exec_data))
    filled = body(events[1])
    assert (
        filled["side"] == "SELL" and filled["symbol"] == "BTC" and filled["order_type"] == "LIMIT"
    )
    # one order under its bare uuid: the second suffixed event is not a new placement
    assert feed(bridge, order(f"{UID}-1", side="SELL")) == []


def test_error_logs_become_strategy_error() -> None:
    bridge = loaded()
    log = {"timestamp": "2026-01-05T10:00:00Z", "level": "critical", "name": "engine",
           "message": "margin call", "meta": {"strategy_id": "s9", "run_id": RUN}}  # fmt: skip
    [event] = bridge.translate(1, "alice", env(log, "log-1", "log_record")).events
    assert EventType(event.event_type) is EventType.STRATEGY_ERROR
    assert event.event_id == "ingest:log-1:log"
    assert body(event)["strategy_id"] == "s9" and body(event)["log_level"] == "CRITICAL"
    info = {**log, "level": "info"}
    assert bridge.translate(2, "alice", env(info, "log-2", "log_record")).events == []
    assert bridge.translate(3, None, env(log, "log-3", "log_record")).events == []


def test_a_run_end_is_reported_then_completed_with_every_field() -> None:
    bridge = loaded()
    feed(bridge, fill(1, "BUY", "100"), fill(2, "SELL", "110"))
    out = bridge.translate(5, "alice", ingest("strategy_event", {"event": "run_ended"}))
    [ended] = out.ended
    assert ended.run_id == RUN and ended.user_id == "alice" and ended.seq == 5
    book = bridge.book(RUN)
    assert book is not None
    metrics = compute_run_metrics(book.trades, initial_balance=Decimal(1000))
    info = RunInfo(strategy_id="s1", strategy_name="Mean rev", symbol="BTC", timeframe="1m")
    [event] = bridge.run_completed(ended, metrics, info)
    assert event.event_id == f"ingest:run:{RUN}:completed"
    doc = body(event)
    assert doc["total_trades"] == 1 and doc["winning_trades"] == 1
    assert "losing_trades" not in doc  # 0, a default: omitted like in proto3 JSON
    assert doc["total_pnl"] == "9.8" and doc["win_rate"] == "1.0" and doc["max_drawdown"] == "0"
    assert doc["results_path"] == f"/api/runs/{RUN}/metrics" and doc["strategy_name"] == "Mean rev"
    assert doc["start_time"] == 1767607260000 and doc["end_time"] == 1767607320000
    assert doc["completed_at"] == 1767607200000 and doc["timeframe"] == "1m"
    assert bridge.book(RUN) is None  # forgotten after completion


def test_a_source_down_becomes_event_error() -> None:
    bridge = IngestBridge()
    at = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    down = HealthChange(source="conn", user_id="alice", state="down", cadence_s=1.0, silent_s=3.5)
    [event] = bridge.source_down(down, "alice", at)
    assert EventType(event.event_type) is EventType.EVENT_ERROR
    assert (
        event.priority is Priority.CRITICAL and event.event_id == "health:conn:down:1767571200000"
    )
    assert body(event)["code"] == "CONNECTION_LOST" and body(event)["source"] == "conn"
    up = msgspec.structs.replace(down, state="up")
    assert bridge.source_down(up, "alice", at) == []


def test_an_unloaded_run_must_be_loaded_first() -> None:
    bridge = IngestBridge()
    envelope = fill(1, "BUY", "1")
    assert bridge.unknown_run(envelope) == RUN
    with pytest.raises(KeyError):
        bridge.translate(1, "alice", envelope)


# --- rules ----------------------------------------------------------------------------


def test_rules_override_defaults_and_disable() -> None:
    rules = parse_bridge_rules(
        {
            "order_filled": {"priority": "normal", "channels": ["ACTIVE_SESSION", "telegram"]},
            "ORDER_PLACED": {"enabled": False},
        }
    )
    assert rules[EventType.ORDER_FILLED].priority is Priority.NORMAL
    assert rules[EventType.ORDER_FILLED].channels == (
        ChannelPreference(ChannelType.ACTIVE_SESSION),
        ChannelPreference(ChannelType.TELEGRAM),
    )
    assert rules[EventType.ORDER_REJECTED] == DEFAULT_RULES[EventType.ORDER_REJECTED]
    events = feed(loaded(rules), order("o1"), fill(1, "BUY", "1", order_id="o1"))
    assert [EventType(e.event_type).name for e in events] == ["ORDER_FILLED", "POSITION_OPENED"]
    assert events[0].priority is Priority.NORMAL and len(events[0].channels) == 2


@pytest.mark.parametrize(
    ("raw", "field", "says"),
    [
        ({"ALERT_TRIGGERED": {}}, "bridge.ALERT_TRIGGERED", "emits no"),
        ({"NOPE": {}}, "bridge.NOPE", "ORDER_FILLED"),
        ({"ORDER_FILLED": "x"}, "bridge.ORDER_FILLED", "table"),
        ({"ORDER_FILLED": {"priority": "URGENT"}}, "bridge.ORDER_FILLED.priority", "CRITICAL"),
        ({"ORDER_FILLED": {"channels": "TELEGRAM"}}, "bridge.ORDER_FILLED.channels", "list"),
        ({"ORDER_FILLED": {"channels": ["FAX"]}}, "bridge.ORDER_FILLED.channels", "'FAX'"),
        ({"ORDER_FILLED": {"enabled": "no"}}, "bridge.ORDER_FILLED.enabled", "true or false"),
        ({"ORDER_FILLED": {"prio": 1}}, "bridge.ORDER_FILLED.prio", "priority, channels"),
    ],
)
def test_bad_rules_name_the_key(raw: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(BridgeConfigError) as failed:
        parse_bridge_rules(raw)
    assert failed.value.field == field and says in str(failed.value)


def test_the_bridge_setting_comes_from_toml_only(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[bridge.ORDER_FILLED]\npriority = "NORMAL"\n')
    settings = load_settings({}, config_file=config, environ={"TRADEWIRE_BRIDGE": "junk"})
    assert settings.bridge == {"ORDER_FILLED": {"priority": "NORMAL"}}
    config.write_text('[bridge.ORDER_FILLED]\nchannels = ["FAX"]\n')
    with pytest.raises(ConfigError) as failed:
        load_settings({}, config_file=config, environ={})
    assert failed.value.setting == "bridge.ORDER_FILLED.channels"
    assert str(config) in str(failed.value)


# --- determinism and replay ---------------------------------------------------------------

fill_specs = st.lists(
    st.tuples(st.sampled_from(["BUY", "SELL"]), st.integers(1, 200), st.integers(1, 3)),
    min_size=1,
    max_size=30,
)


def _envelopes(specs: list[tuple[str, int, int]]) -> list[Envelope]:
    return [fill(n + 1, side, str(price), str(qty)) for n, (side, price, qty) in enumerate(specs)]


def _snapshot(specs: list[tuple[str, int, int]]) -> RunSnapshot:
    rows = [
        {
            "execution_id": f"x{n + 1}",
            "symbol": "BTC",
            "side": side,
            "quantity": str(qty),
            "price": str(price),
            "commission": "0.1",
            "exec_time": f"2026-01-05T10:{(n + 1) % 60:02d}:00Z",
        }
        for n, (side, price, qty) in enumerate(specs)
    ]
    orders = {"o0": OrderInfo(symbol="BTC", side="BUY")}
    return RunSnapshot(fills_from_rows(rows), orders)


@settings(max_examples=60, deadline=None)
@given(specs=fill_specs, cut=st.integers(0, 30))
def test_replay_from_any_point_yields_the_same_events(
    specs: list[tuple[str, int, int]], cut: int
) -> None:
    cut = min(cut, len(specs))
    envelopes = _envelopes(specs)
    whole = feed(loaded(), *envelopes)
    again = feed(loaded(), *envelopes)
    assert whole == again  # ids and payloads are functions of the cause
    resumed = IngestBridge()
    resumed.load_run(RUN, "alice", _snapshot(specs[:cut]))  # restarted after `cut` fills
    tail = feed(resumed, *envelopes[cut:])
    assert tail == whole[len(whole) - len(tail) :]
    assert len({e.event_id for e in whole}) == len(whole)
    fresh = TradeBook.rebuild(_snapshot(specs).fills)
    book = resumed.book(RUN)
    assert book is not None and book.state() == fresh.state()


def test_informational_events_are_not_built_without_a_live_session() -> None:
    bridge = loaded()
    quiet = bridge.translate(1, "alice", order("o1"), informational=False).events
    assert quiet == []  # ORDER_PLACED would be dropped by delivery anyway
    events = bridge.translate(2, "alice", fill(1, "BUY", "1", order_id="o1"), informational=False)
    kinds = [EventType(e.event_type).name for e in events.events]
    assert kinds == ["ORDER_FILLED", "POSITION_OPENED"]  # the order was still remembered
    assert body(events.events[0])["order_type"] == "LIMIT"


@settings(max_examples=50, deadline=None)
@given(price=st.decimals(allow_nan=False, allow_infinity=False, places=4), side=st.text(max_size=5))
def test_payloads_encode_like_the_wire_codec(price: Decimal, side: str) -> None:
    from tradewire.bridge.events import _encode
    from tradewire.wire.payloads import OrderEventPayload, encode_payload

    payload = OrderEventPayload(order_id="o", side=side, fill_price=price, timestamp=5)
    assert _encode(payload) == encode_payload(payload)
