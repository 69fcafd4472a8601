"""Building the MIME messages of the email channel (no I/O).

One event makes one ``multipart/alternative`` message (text, then HTML);
a digest makes one message with a section per event. Every message carries
a ``Message-ID`` derived from its event id(s), so a retried send is
recognisably the same message, and one ``X-Tradewire-Event-Id`` header per
event it reports.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from tradewire.channels.message import RenderedMessage

__all__ = ["EVENT_ID_HEADER", "MailItem", "compose_message", "message_id_for"]

EVENT_ID_HEADER = "X-Tradewire-Event-Id"
"""One such header per event a message reports."""

_SUBJECT_LIMIT = 200


@dataclass(frozen=True, slots=True)
class MailItem:
    """One event, rendered, on its way to one address."""

    event_id: str
    address: str
    message: RenderedMessage


def message_id_for(event_ids: Sequence[str], from_address: str) -> str:
    """The deterministic ``Message-ID`` of a message reporting ``event_ids``.

    A hash keeps it a valid ``id-left`` whatever characters an event id has.
    """
    digest = hashlib.sha256("\n".join(event_ids).encode("utf-8")).hexdigest()[:40]
    kind = "event" if len(event_ids) == 1 else "digest"
    return f"<{digest}.{kind}@{_domain_of(from_address)}>"


def compose_message(items: Sequence[MailItem], from_address: str, now_ms: int) -> EmailMessage:
    """The message for one event, or the digest of several (all to ``items[-1].address``)."""
    if not items:
        raise ValueError("a message needs at least one item")
    msg = EmailMessage()
    msg["From"] = from_address
    msg["To"] = items[-1].address
    msg["Subject"] = _subject(items)
    msg["Date"] = formatdate(now_ms / 1000, localtime=False, usegmt=True)
    msg["Message-ID"] = message_id_for([i.event_id for i in items], from_address)
    for item in items:
        msg[EVENT_ID_HEADER] = header_safe(item.event_id)
    if len(items) == 1:
        msg.set_content(items[0].message.text)
        msg.add_alternative(_html_document(items[0].message.html), subtype="html")
    else:
        msg.set_content(_digest_text(items))
        msg.add_alternative(_html_document(_digest_html(items)), subtype="html")
    return msg


def _subject(items: Sequence[MailItem]) -> str:
    first = _one_line(items[0].message.title)
    if len(items) > 1:
        first = f"{first} (+{len(items) - 1} more)"
    return first[:_SUBJECT_LIMIT]


def header_safe(value: str) -> str:
    """``value`` with control characters percent-encoded: an event id from a container
    must never break (or inject) a mail header. Ordinary ids come back unchanged."""
    return "".join(f"%{ord(c):02X}" if ord(c) < 0x20 or ord(c) == 0x7F else c for c in value)


def _one_line(text: str) -> str:
    # A header must not contain line breaks (EmailMessage refuses them).
    return " ".join(text.split())


def _digest_text(items: Sequence[MailItem]) -> str:
    parts = [f"{len(items)} notifications\n"]
    for item in items:
        title = _one_line(item.message.title)
        parts.append(f"{title}\n{'-' * min(len(title), 72)}\n{item.message.text}\n")
    return "\n".join(parts)


def _digest_html(items: Sequence[MailItem]) -> str:
    sections = [
        f"<section><h2>{html.escape(_one_line(i.message.title))}</h2>\n{i.message.html}</section>"
        for i in items
    ]
    return f"<p>{len(items)} notifications</p>\n" + "\n<hr>\n".join(sections)


def _html_document(body: str) -> str:
    head = '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body>\n'
    return f"{head}{body}\n</body></html>\n"


def _domain_of(from_address: str) -> str:
    _, addr = parseaddr(from_address)
    domain = addr.rpartition("@")[2].strip("<>[] ")
    return domain or "tradewire.invalid"
