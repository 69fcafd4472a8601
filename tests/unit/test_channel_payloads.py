"""Pure pieces of the HTTP channels: retry-after, status mapping, redaction, request bodies."""

from __future__ import annotations

import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradewire.channels._http import HttpReply, Redactor, failure_for, retry_after_ms, url_secrets
from tradewire.channels.discord import discord_payload, with_wait
from tradewire.channels.message import RenderedMessage
from tradewire.channels.slack import slack_payload
from tradewire.channels.telegram import ack_keyboard, fit_message, visible_length
from tradewire.delivery.model import Event, Priority
from tradewire.delivery.ports import PermanentFailure, Retryable
from tradewire.wire import EventType

NOW = 1_767_444_060_000
NO_SECRETS = Redactor()


def reply(status: int, body: bytes = b"", **headers: str) -> HttpReply:
    return HttpReply(status, {k.replace("_", "-"): v for k, v in headers.items()}, body)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (reply(429, retry_after="3"), 3_000),
        (reply(429, retry_after="1.5"), 1_500),
        (reply(429, retry_after=email.utils.formatdate(NOW / 1000 + 90, usegmt=True)), 90_000),
        (reply(429, retry_after=email.utils.formatdate(NOW / 1000 - 90, usegmt=True)), 0),
        (reply(429, b'{"ok":false,"error_code":429,"parameters":{"retry_after":7}}'), 7_000),
        (reply(429, b'{"retry_after": 0.123, "global": false}', retry_after="1"), 123),
        (reply(429, retry_after="soon"), None),
        (reply(429, retry_after="-5"), 0),
        (reply(429, b'{"retry_after": "x"}'), None),
        (reply(429, retry_after="99999999999"), 24 * 3_600_000),
        (reply(429), None),
    ],
)
def test_retry_after(answer: HttpReply, expected: int | None) -> None:
    assert retry_after_ms(answer, NOW) == expected


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, Retryable),
        (408, Retryable),
        (500, Retryable),
        (503, Retryable),
        (400, PermanentFailure),
        (401, PermanentFailure),
        (403, PermanentFailure),
        (404, PermanentFailure),
        (410, PermanentFailure),
        (301, PermanentFailure),
    ],
)
def test_failure_for_status(status: int, kind: type) -> None:
    outcome = failure_for(reply(status, b"word"), service="svc", now_ms=NOW, redact=NO_SECRETS)
    assert isinstance(outcome, kind)
    assert outcome.error == f"svc answered {status}: word"


def test_failure_describes_json_errors() -> None:
    body = b'{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}'
    outcome = failure_for(reply(403, body), service="telegram", now_ms=NOW, redact=NO_SECRETS)
    assert outcome == PermanentFailure(
        "telegram answered 403: Forbidden: bot was blocked by the user"
    )
    empty = failure_for(reply(502), service="x", now_ms=NOW, redact=NO_SECRETS)
    assert empty == Retryable("x answered 502: (empty body)")


def test_redactor_removes_secrets_and_credential_shapes() -> None:
    url = "https://discord.com/api/webhooks/123456789012345678/abcDEF_ghi-jkl"
    redact = Redactor(url_secrets(url))
    assert "abcDEF" not in redact(f"failed to reach {url}")
    assert "abcDEF" not in redact("path /api/webhooks/123456789012345678/abcDEF_ghi-jkl?wait=true")
    anyone = Redactor()
    assert anyone("GET /bot123456:AAH-secret_token/sendMessage") == "GET /[redacted]/sendMessage"
    assert "T000/B000/XXXX" not in anyone("https://hooks.slack.com/services/T000/B000/XXXX")
    assert "AAAAAAAA" not in anyone("token 1234567:" + "A" * 35)


def test_with_wait_keeps_other_parameters() -> None:
    assert (
        with_wait("https://d.example/api/webhooks/1/t")
        == "https://d.example/api/webhooks/1/t?wait=true"
    )
    assert (
        with_wait("https://d.example/w?thread_id=9&wait=false")
        == "https://d.example/w?thread_id=9&wait=true"
    )


def test_telegram_fits_html_by_visible_length() -> None:
    html = "<b>" + "&amp;" * 4096 + "</b>"
    assert visible_length(html) == 4096
    message = RenderedMessage("t", "plain " * 2_000, "", html, "", "")
    assert fit_message(message) == (html, True)
    longer = RenderedMessage("t", "plain " * 2_000, "", html + "x", "", "")
    text, is_html = fit_message(longer)
    assert not is_html and len(text) == 4096 and text.endswith("…")
    emoji = RenderedMessage("t", "😀" * 3_000, "", "😀" * 3_000, "", "")  # 2 UTF-16 units each
    text, is_html = fit_message(emoji)
    assert not is_html and len(text.encode("utf-16-le")) // 2 <= 4096


def test_ack_keyboard_only_when_the_id_fits_64_bytes() -> None:
    assert ack_keyboard("e" * 60) == {
        "inline_keyboard": [[{"text": "Acknowledge", "callback_data": "ack:" + "e" * 60}]]
    }
    assert ack_keyboard("e" * 61) is None
    assert ack_keyboard("é" * 31) is None  # bytes, not characters


TEXTS = st.text(max_size=9_000)


@given(TEXTS, TEXTS, st.sampled_from(list(Priority)))
def test_discord_and_slack_bodies_stay_within_documented_limits(
    title: str, body: str, priority: Priority
) -> None:
    event = Event("e", "u", EventType.ORDER_FILLED, priority, timestamp_ms=NOW)
    message = RenderedMessage(title or "t", body, "", "", body, body)
    discord = discord_payload(event, message)
    assert len(discord["content"]) <= 2000
    embed = discord["embeds"][0]
    assert len(embed["title"]) <= 256 and len(embed.get("description", "")) <= 4096
    size = len(embed["title"]) + len(embed.get("description", ""))
    size += sum(len(f["name"]) + len(f["value"]) for f in embed["fields"])
    assert size <= 6000
    slack = slack_payload(event, message)
    assert len(slack["text"]) <= 40_000
    header, *rest = slack["blocks"]
    assert 0 < len(header["text"]["text"]) <= 150
    for block in rest:
        if block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= 3000
