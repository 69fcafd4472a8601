"""Escaping per format: arbitrary text never opens markup, and reads back unchanged."""

from __future__ import annotations

import html
import re

from hypothesis import given
from hypothesis import strategies as st

from tradewire.channels.escaping import (
    DISCORD_SPECIAL,
    ELLIPSIS,
    escape_discord,
    escape_html,
    escape_slack,
    escape_telegram_html,
    truncate_discord,
    truncate_entities,
    truncate_plain,
    unescape_discord,
)

TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
MARKUPISH = st.text(alphabet="<>&\"'*_~`|\\[]()#@-+.!: \n\t0123456789abc", max_size=200)
ANY = st.one_of(TEXT, MARKUPISH)
ENTITY = re.compile(r"&(amp|lt|gt|quot|#x27);")


def _unescaped_specials(escaped: str) -> list[str]:
    """Discord special characters in ``escaped`` not preceded by an escaping backslash."""
    found, i = [], 0
    while i < len(escaped):
        if escaped[i] == "\\":
            i += 2
            continue
        if escaped[i] in DISCORD_SPECIAL:
            found.append(escaped[i])
        i += 1
    return found


@given(ANY)
def test_html_escaping_leaves_no_markup_and_round_trips(text: str) -> None:
    for escaped in (escape_html(text), escape_telegram_html(text)):
        assert "<" not in escaped and ">" not in escaped and '"' not in escaped
        assert "&" not in ENTITY.sub("", escaped)
        assert html.unescape(escaped) == text


@given(ANY)
def test_slack_escaping_only_touches_amp_lt_gt(text: str) -> None:
    escaped = escape_slack(text)
    assert "<" not in escaped and ">" not in escaped
    assert "&" not in re.sub(r"&(amp|lt|gt);", "", escaped)
    assert escaped.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text


@given(ANY)
def test_discord_escaping_round_trips_and_leaves_no_live_markup(text: str) -> None:
    escaped = escape_discord(text)
    assert unescape_discord(escaped) == text
    assert _unescaped_specials(escaped) == []
    for line in escaped.split("\n"):
        stripped = line.lstrip(" \t")
        assert not re.match(r"[-+]([ \t#]|$)", stripped), line
        assert not re.match(r"\d+\.([ \t]|$)", stripped), line


def test_discord_escaping_examples() -> None:
    assert escape_discord("**@everyone** [x](y)") == "\\*\\*\\@everyone\\*\\* \\[x\\](y)"
    assert escape_discord("- item\n1. first") == "\\- item\n1\\. first"
    assert escape_discord("-12.50 at 45000.10") == "-12.50 at 45000.10"  # numbers stay readable


@given(ANY, st.integers(min_value=1, max_value=50))
def test_truncation_respects_the_limit_and_escapes(text: str, limit: int) -> None:
    plain = truncate_plain(text, limit)
    assert len(plain) <= limit
    assert plain == text or plain.endswith(ELLIPSIS)
    discord = truncate_discord(escape_discord(text), limit)
    assert len(discord) <= limit
    if discord != escape_discord(text):
        assert discord.endswith(ELLIPSIS)
        assert text.startswith(unescape_discord(discord[:-1]))
        assert _unescaped_specials(discord[:-1]) == []
    entities = truncate_entities(escape_slack(text), limit)
    assert len(entities) <= limit
    if entities != escape_slack(text):
        kept = entities[:-1]
        assert not re.search(r"&[a-z]{0,3}$", kept)
        assert text.startswith(kept.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))


def test_a_marker_alone_on_a_line_before_more_text_is_escaped() -> None:
    # found by hypothesis: "-" then a line break was left live
    assert escape_discord("-\n0") == "\\-\n0"
    assert escape_discord("1.\nx") == "1\\.\nx"
