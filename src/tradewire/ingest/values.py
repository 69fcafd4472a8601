"""Column values of the ingest projections: exact money text, sortable UTC times."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from decimal import Decimal
from typing import Any, Final

import msgspec
from msgspec import UnsetType

from tradewire.wire.ingest_payloads import parse_utc

__all__ = [
    "fingerprint",
    "json_text",
    "money_text",
    "ms_to_utc_text",
    "opt",
    "utc_text",
    "utc_text_or",
]

_UTC_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"
_ENCODER = msgspec.json.Encoder(decimal_format="number")


# The common shape, already UTC: 2026-01-03T12:41:00Z or with up to 6 fraction digits.
_ZULU: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.(\d{1,6}))?Z")


def utc_text(text: str) -> str:
    """``text`` (ISO-8601, naive = UTC) as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.

    Fixed width, so the text order of the column is the time order.
    """
    zulu = _ZULU.fullmatch(text)
    if zulu is not None:  # fast path: only the fraction needs padding
        return f"{text[:19]}.{(zulu[1] or '').ljust(6, '0')}Z"
    return parse_utc(text).strftime(_UTC_FORMAT)


def utc_text_or(text: str | UnsetType | None, default: str) -> str:
    """:func:`utc_text` of ``text``, or ``default`` when it is absent."""
    return utc_text(text) if isinstance(text, str) else default


def ms_to_utc_text(ms: int) -> str:
    """Unix milliseconds as :func:`utc_text`."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime(_UTC_FORMAT)


def money_text(value: Decimal | UnsetType | None) -> str | None:
    """The exact decimal as text (``None`` when absent)."""
    return str(value) if isinstance(value, Decimal) else None


def opt(value: Any) -> Any:
    """``None`` for an absent (``UNSET``) optional value, else the value."""
    return None if isinstance(value, UnsetType) else value


def json_text(value: Any) -> str | None:
    """Compact JSON of a free-form value (``None`` when absent)."""
    if value is None or isinstance(value, UnsetType):
        return None
    return _ENCODER.encode(value).decode()


def fingerprint(*values: object) -> str:
    """Hex SHA-256 of values, decimals compared by value (``0.10`` == ``0.1``)."""
    parts = [_canonical(v) for v in values]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _canonical(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    if value is None or isinstance(value, UnsetType):
        return "\x00"
    return str(value)
