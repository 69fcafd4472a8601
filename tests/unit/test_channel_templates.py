"""Jinja2 templates: a readable message per EventType, exact money, escaped per format."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradewire.channels.escaping import escape_discord, unescape_discord
from tradewire.channels.message import Renderer
from tradewire.channels.templates import TemplateRenderer, event_type_name, format_value
from tradewire.delivery.model import Event, Priority
from tradewire.errors import ConfigError
from tradewire.wire import EventType

RENDERER = TemplateRenderer()
TEMPLATES = Path(__file__).resolve().parents[2] / "src/tradewire/channels/templates"

SAMPLES: dict[EventType, tuple[dict[str, Any], str]] = {
    EventType.ORDER_PLACED: (
        {
            "side": "buy",
            "quantity": "0.1",
            "symbol": "BTCUSDT",
            "order_type": "LIMIT",
            "price": "44000.50",
            "exchange": "binance",
        },
        "BUY 0.1 BTCUSDT limit order placed at 44000.50 on binance",
    ),
    EventType.ORDER_FILLED: (
        {
            "side": "BUY",
            "fill_quantity": "0.1",
            "symbol": "BTCUSDT",
            "fill_price": "45000",
            "exchange": "binance",
        },
        "BUY 0.1 BTCUSDT filled at 45000 on binance",
    ),
    EventType.ORDER_CANCELLED: (
        {"side": "SELL", "quantity": "2", "symbol": "ETHUSDT"},
        "SELL 2 ETHUSDT order cancelled",
    ),
    EventType.ORDER_REJECTED: (
        {
            "side": "BUY",
            "quantity": "1",
            "symbol": "SOLUSDT",
            "exchange": "bybit",
            "error_message": "insufficient margin",
        },
        "BUY 1 SOLUSDT order rejected by bybit: insufficient margin",
    ),
    EventType.ORDER_EXPIRED: (
        {"side": "BUY", "quantity": "1", "symbol": "X"},
        "BUY 1 X order expired",
    ),
    EventType.ALERT_TRIGGERED: (
        {"symbol": "BTCUSDT", "triggered_price": "50000.00", "condition": "price > 50000"},
        "Alert BTCUSDT at 50000.00: price > 50000",
    ),
    EventType.ALERT_CREATED: (
        {"symbol": "BTCUSDT", "condition": "rsi < 30"},
        "Alert created on BTCUSDT: rsi < 30",
    ),
    EventType.ALERT_DELETED: ({"symbol": "BTCUSDT"}, "Alert deleted on BTCUSDT"),
    EventType.POSITION_OPENED: (
        {"side": "LONG", "size": "0.5", "symbol": "ETHUSDT", "entry_price": "3000.25"},
        "LONG 0.5 ETHUSDT position opened at 3000.25",
    ),
    EventType.POSITION_CLOSED: (
        {
            "side": "LONG",
            "size": "0.5",
            "symbol": "ETHUSDT",
            "current_price": "3100",
            "realized_pnl": "-12.50",
        },
        "LONG 0.5 ETHUSDT position closed at 3100, realized PnL -12.50",
    ),
    EventType.POSITION_UPDATED: (
        {"side": "SHORT", "size": "1", "symbol": "BTCUSDT", "unrealized_pnl": "0.00000001"},
        "SHORT 1 BTCUSDT position updated, unrealized PnL 0.00000001",
    ),
    EventType.POSITION_LIQUIDATED: (
        {
            "side": "LONG",
            "size": "3",
            "symbol": "BTCUSDT",
            "liquidation_price": "39000",
            "exchange": "binance",
        },
        "LIQUIDATED: LONG 3 BTCUSDT at 39000 on binance",
    ),
    EventType.WORKSPACE_CHANGED: (
        {"workspace_id": "ws-1", "change_type": "layout"},
        "Workspace ws-1 changed: layout",
    ),
    EventType.CHART_ANNOTATION_ADDED: (
        {"annotation_type": "trendline", "symbol": "BTCUSDT", "timeframe": "1h"},
        "trendline added on BTCUSDT 1h",
    ),
    EventType.CHART_ANNOTATION_REMOVED: (
        {"symbol": "BTCUSDT"},
        "Annotation removed from BTCUSDT",
    ),
    EventType.INDICATOR_UPDATED: (
        {"indicator_name": "RSI", "symbol": "BTCUSDT", "timeframe": "15m"},
        "Indicator RSI updated on BTCUSDT 15m",
    ),
    EventType.STRATEGY_STARTED: ({"strategy_name": "mean-rev"}, "Strategy mean-rev started"),
    EventType.STRATEGY_STOPPED: (
        {"strategy_id": "s-7", "message": "by user"},
        "Strategy s-7 stopped: by user",
    ),
    EventType.STRATEGY_LOG: (
        {"strategy_name": "mean-rev", "log_level": "warning", "message": "spread wide"},
        "WARNING from mean-rev: spread wide",
    ),
    EventType.STRATEGY_ERROR: (
        {"strategy_name": "mean-rev", "message": "division by zero", "details": "Traceback ..."},
        "Strategy mean-rev error: division by zero",
    ),
    EventType.BACKTEST_COMPLETED: (
        {
            "strategy_name": "mean-rev",
            "symbol": "BTCUSDT",
            "timeframe": "1h",
            "total_trades": 42,
            "total_pnl": "1234.5600",
        },
        "Backtest of mean-rev on BTCUSDT 1h completed: 42 trades, PnL 1234.5600",
    ),
    EventType.CONTAINER_STARTING: (
        {"message": "pulling image"},
        "Container starting: pulling image",
    ),
    EventType.CONTAINER_READY: ({}, "Container ready"),
    EventType.CONTAINER_SHUTTING_DOWN: ({"reason": "deploy"}, "Container shutting down"),
    EventType.EVENT_ERROR: ({"error": "bad payload"}, "Event error: bad payload"),
}


def make(
    event_type: int, payload: dict[str, Any] | bytes, priority: Priority = Priority.NORMAL
) -> Event:
    body = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
    return Event(
        "evt-1", "u1", int(event_type), priority, payload=body, timestamp_ms=1_767_444_060_000
    )


def test_every_event_type_has_a_template_and_a_sample() -> None:
    assert set(SAMPLES) == set(EventType)
    for event_type in EventType:
        assert (TEMPLATES / f"{event_type.name.lower()}.j2").is_file(), event_type.name


def test_renderer_implements_the_port() -> None:
    assert isinstance(RENDERER, Renderer)


@pytest.mark.parametrize("event_type", list(EventType), ids=lambda t: t.name)
def test_readable_title_per_event_type(event_type: EventType) -> None:
    payload, title = SAMPLES[event_type]
    message = RENDERER.render(make(event_type, payload))
    assert message.title == title
    assert message.text.startswith(title)
    assert message.telegram_html.startswith(f"<b>{html.escape(title, quote=False)}</b>")
    for body in (message.text, message.html, message.telegram_html):
        assert body
    assert "None" not in message.text


def test_money_is_the_exact_decimal_text() -> None:
    payload = {
        "side": "BUY",
        "fill_quantity": "0.10000000",
        "symbol": "BTCUSDT",
        "fill_price": "45000.1000000000000000001",
    }
    message = RENDERER.render(make(EventType.ORDER_FILLED, payload))
    assert message.title == "BUY 0.10000000 BTCUSDT filled at 45000.1000000000000000001"
    numbers = {"side": "BUY", "fill_quantity": 0.1, "symbol": "X", "fill_price": 1e-7}
    message = RENDERER.render(make(EventType.ORDER_FILLED, numbers))
    assert message.title == "BUY 0.1 X filled at 0.0000001"  # no exponent, no float noise


def test_format_value() -> None:
    from decimal import Decimal

    assert format_value(Decimal("1E+3")) == "1000"
    assert format_value(None) == ""
    assert format_value({"a": [1, "b"]}) == '{"a":[1,"b"]}'


def test_body_lists_the_payload_fields_per_format() -> None:
    payload = {
        "order_id": "ord-1",
        "side": "BUY",
        "fill_quantity": "0.1",
        "symbol": "BTCUSDT",
        "fill_price": "45000",
    }
    message = RENDERER.render(make(EventType.ORDER_FILLED, payload))
    assert "Order: ord-1" in message.text
    assert "<strong>Order:</strong> ord-1<br>" in message.html
    assert "<b>Order:</b> ord-1\n" in message.telegram_html
    assert "**Order:** ord-1\n" in message.discord_markdown
    assert "*Order:* ord-1\n" in message.slack_mrkdwn
    assert "Time: 2026-01-03" not in message.text  # no payload timestamp given
    # Discord and Slack carry the title in their own field: no heading in the body.
    assert not message.discord_markdown.startswith("**BUY")
    assert not message.slack_mrkdwn.startswith("*BUY")


def test_undecodable_payload_falls_back_to_raw_json() -> None:
    message = RENDERER.render(
        make(EventType.ORDER_FILLED, b'{"fill_price": "not-a-number", "x": "<b>"}')
    )
    assert message.title == "ORDER_FILLED (unreadable payload)"
    assert '"fill_price": "not-a-number"' in message.text
    assert "&lt;b&gt;" in message.telegram_html and '<b>"' not in message.telegram_html
    garbage = RENDERER.render(make(EventType.ALERT_TRIGGERED, b"\xff\xfe not json"))
    assert garbage.title == "ALERT_TRIGGERED (unreadable payload)"


def test_unknown_event_type_uses_the_generic_template() -> None:
    message = RENDERER.render(make(999, {"hello": "world"}))
    assert message.title == "EVENT_TYPE_999"
    assert event_type_name(999) == "EVENT_TYPE_999"
    assert "hello: world" in message.text


def test_override_directory_wins_file_by_file(tmp_path: Path) -> None:
    (tmp_path / "order_filled.j2").write_text(
        '{% extends "_order.j2" %}'
        "{% block title %}Fill! {{ p.symbol }} @ {{ p.fill_price }}{% endblock %}"
    )
    renderer = TemplateRenderer(override_dir=tmp_path)
    payload = {"symbol": "A<B", "fill_price": "1.50"}
    assert renderer.render(make(EventType.ORDER_FILLED, payload)).title == "Fill! A<B @ 1.50"
    assert renderer.render(make(EventType.ORDER_FILLED, payload)).telegram_html.startswith(
        "<b>Fill! A&lt;B @ 1.50</b>"
    )
    assert (
        renderer.render(make(EventType.ALERT_DELETED, {"symbol": "X"})).title
        == "Alert deleted on X"
    )


def test_missing_override_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        TemplateRenderer(override_dir=tmp_path / "nope")
    assert info.value.setting == "templates_dir"


def test_unknown_payload_keys_are_usable_in_templates(tmp_path: Path) -> None:
    (tmp_path / "order_filled.j2").write_text(
        '{% extends "_order.j2" %}{% block details %}{{ field("Fee", p.extras.fee) }}'
        '{{ field("Rebate", p.extras.rebate) }}{% endblock %}'
    )
    payload = b'{"symbol": "X", "fee": "0.10", "rebate": 0.050}'
    message = TemplateRenderer(override_dir=tmp_path).render(make(EventType.ORDER_FILLED, payload))
    assert message.text.endswith("Fee: 0.10\nRebate: 0.050")


@pytest.mark.parametrize(
    "broken",
    [
        "{% extends '_order.j2' %}{% block title %}{{ p.symbol.nope() }}{% endblock %}",
        "{% extends 'missing.j2' %}",
        "{% if %}",
        "{{ 1 / 0 }}",
    ],
)
def test_broken_override_falls_back_and_never_raises(tmp_path: Path, broken: str) -> None:
    (tmp_path / "order_filled.j2").write_text(broken)
    message = TemplateRenderer(override_dir=tmp_path).render(
        make(EventType.ORDER_FILLED, {"symbol": "X"})
    )
    assert message.title.startswith("ORDER_FILLED")
    assert "symbol: X" in message.text


def test_broken_generic_template_still_renders(tmp_path: Path) -> None:
    (tmp_path / "_generic.j2").write_text("{{ 1 / 0 }}")
    (tmp_path / "order_filled.j2").write_text("{{ 1 / 0 }}")
    message = TemplateRenderer(override_dir=tmp_path).render(
        make(EventType.ORDER_FILLED, {"symbol": "<X>"})
    )
    assert message.title.startswith("ORDER_FILLED:")
    assert "&lt;X&gt;" in message.telegram_html


# -- escaping holds for any payload text ----------------------------------------------

HOSTILE = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=60) | st.text(
    alphabet="<>&\"'*_~`|\\[]()#@-+.!:\n abc", min_size=1, max_size=60
)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.data: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        self.tags.append("/" + tag)

    def handle_data(self, data: str) -> None:
        self.data.append(data)


def _tags(markup: str) -> tuple[list[str], str]:
    parser = _Tags()
    parser.feed(markup)
    parser.close()
    return parser.tags, "".join(parser.data)


def _strategy_error(text: str) -> Event:
    payload = {"strategy_name": text, "message": text, "details": text, "log_level": text}
    return make(EventType.STRATEGY_ERROR, payload, Priority.CRITICAL)


@given(HOSTILE)
def test_arbitrary_text_never_breaks_out_of_html(text: str) -> None:
    benign = RENDERER.render(_strategy_error("x"))
    hostile = RENDERER.render(_strategy_error(text))
    for fmt in ("html", "telegram_html"):
        tags, data = _tags(getattr(hostile, fmt))
        assert tags == _tags(getattr(benign, fmt))[0]
        assert text.strip() in html.unescape(data) or text.strip() in data


def _live_bold(markdown: str) -> int:
    """``**`` markers Discord would act on: not escaped, not inside a code block."""
    outside_code = re.sub(r"```.*?```", "", markdown, flags=re.S)
    return len(re.findall(r"(?<!\\)\*\*", outside_code))


@given(HOSTILE)
def test_arbitrary_text_never_breaks_out_of_slack_or_discord(text: str) -> None:
    hostile = RENDERER.render(_strategy_error(text))
    benign = RENDERER.render(_strategy_error("x"))
    assert "<" not in hostile.slack_mrkdwn and ">" not in hostile.slack_mrkdwn
    assert "&" not in re.sub(r"&(amp|lt|gt);", "", hostile.slack_mrkdwn)
    # Discord: the value appears escaped, and the markup around it is the template's.
    assert escape_discord(text) in hostile.discord_markdown
    assert _live_bold(hostile.discord_markdown) == _live_bold(benign.discord_markdown)
    assert text in unescape_discord(hostile.discord_markdown)


@given(HOSTILE)
def test_title_is_one_plain_line(text: str) -> None:
    title = RENDERER.render(_strategy_error(text)).title
    assert "\n" not in title and "\r" not in title
    assert title == " ".join(title.split())
