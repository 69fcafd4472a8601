"""Escaping and safe truncation for every message format a channel sends.

Each ``escape_*`` function turns arbitrary text (a symbol, a strategy's log
message, anything a container put in a payload) into text that the target
format shows literally: it cannot open a tag, a link, a mention or a
formatting span. The ``truncate_*`` functions shorten already-escaped text
without cutting an escape sequence in half.

* HTML (email): ``& < > " '`` become entities.
* Telegram ``parse_mode=HTML``: ``& < > "`` become the four named entities
  the Bot API accepts (``&amp; &lt; &gt; &quot;``).
* Discord markdown: a backslash before every character that markdown,
  masked links, mentions, quotes, headings and lists use.
* Slack ``mrkdwn``: only ``& < >``, as Slack documents (``<`` opens links and
  mentions such as ``<!channel>``; Slack has no escape for ``* _ ~``).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "ELLIPSIS",
    "escape_discord",
    "escape_html",
    "escape_slack",
    "escape_telegram_html",
    "truncate_discord",
    "truncate_entities",
    "truncate_plain",
    "unescape_discord",
]

ELLIPSIS: Final = "…"
"""Appended to a truncated message (one character)."""

_HTML: Final = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"})
_TELEGRAM: Final = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})
_SLACK: Final = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})

DISCORD_SPECIAL: Final = frozenset("\\*_~`|<>[]#@")
"""Characters :func:`escape_discord` always prefixes with a backslash."""
_DISCORD: Final = re.compile("([" + re.escape("".join(sorted(DISCORD_SPECIAL))) + "])")
# List markers only count at the start of a line and before a blank:
# "- item", "+ item", "-# subtext", "1. item".
_DISCORD_LIST: Final = re.compile(
    r"(^|\n)([ \t]*)([-+])(?=[ \t#\n]|$)"  # bullet or "-#" subtext, also alone on a line
    r"|(^|\n)([ \t]*\d+)\.(?=[ \t\n]|$)"  # numbered item
)
_DISCORD_UNESCAPE: Final = re.compile(r"\\(.)", re.DOTALL)
_ENTITY_TAIL: Final = re.compile(r"&[#a-zA-Z0-9]{0,8}$")


def escape_html(text: str) -> str:
    """Escape ``text`` for an HTML body or attribute value."""
    return text.translate(_HTML)


def escape_telegram_html(text: str) -> str:
    """Escape ``text`` for Telegram's ``parse_mode=HTML`` (text and attribute values)."""
    return text.translate(_TELEGRAM)


def escape_slack(text: str) -> str:
    """Escape ``text`` for Slack ``mrkdwn`` (``& < >`` only, as Slack documents)."""
    return text.translate(_SLACK)


def escape_discord(text: str) -> str:
    """Escape ``text`` for Discord markdown: a backslash before each special character.

    Discord removes a backslash before any ASCII punctuation, so the reader
    sees ``text`` unchanged. List markers (``- ``, ``+ ``, ``-#``, ``1. ``) are
    escaped where they start a line, counting the start of ``text`` as one
    (the escaper cannot know where a template puts a value).
    """
    return _DISCORD_LIST.sub(_escape_list_marker, _DISCORD.sub(r"\\\1", text))


def _escape_list_marker(match: re.Match[str]) -> str:
    if match.group(3) is not None:
        return f"{match.group(1)}{match.group(2)}\\{match.group(3)}"
    return f"{match.group(4)}{match.group(5)}\\."


def unescape_discord(text: str) -> str:
    """What Discord shows for escaped ``text`` (the inverse of :func:`escape_discord`)."""
    return _DISCORD_UNESCAPE.sub(r"\1", text)


def truncate_plain(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in an ellipsis when cut."""
    if limit < 1:
        raise ValueError("a message limit is at least 1 character")
    if len(text) <= limit:
        return text
    return text[: limit - 1] + ELLIPSIS


def truncate_discord(text: str, limit: int) -> str:
    """Escaped Discord text cut to ``limit`` without leaving half of a ``\\x`` escape."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    trailing = len(head) - len(head.rstrip("\\"))
    if trailing % 2:
        head = head[:-1]
    return head + ELLIPSIS


def truncate_entities(text: str, limit: int) -> str:
    """Entity-escaped text (HTML, Slack) cut to ``limit`` without cutting an ``&...;``."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    partial = _ENTITY_TAIL.search(head)
    if partial is not None:
        head = head[: partial.start()]
    return head + ELLIPSIS
