"""Read side of the ingest projections: paginated, filtered, per-user listings (pure).

Theory of operation
-------------------
Every REST listing (runs, orders, executions, bars, OCO groups, instances,
strategies, logs) is a :class:`Listing`: the projection it reads, the
columns it returns, the *keyset* it is ordered by (unique, immutable
columns), the column holding the owner and the time column the ``since`` /
``until`` range applies to. :func:`build_query` turns a listing and a
:class:`ListRequest` into one SQL statement and its arguments; it never
reads the database, so it is tested without one.

Pages use keyset pagination: the ``cursor`` of a page is the keyset of its
last row (opaque URL-safe base64 of JSON, bound to the listing and the
order), and the next page asks for rows strictly after it. Rows appended
meanwhile never shift a page, unlike ``OFFSET``. A page is full when it
holds ``limit`` rows; then ``next_cursor`` is set. Every statement carries
``user_id = ?``: a user only ever sees their own rows.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import msgspec

from tradewire.ingest.values import utc_text

__all__ = [
    "LISTINGS",
    "Filter",
    "ListRequest",
    "Listing",
    "QueryError",
    "build_query",
    "decode_cursor",
    "encode_cursor",
    "rows_to_page",
]

FilterKind = Literal["eq", "in", "contains"]


class Filter(msgspec.Struct, frozen=True):
    """A query parameter: ``eq`` (one value), ``in`` (comma list), ``contains`` (text)."""

    column: str
    kind: FilterKind = "eq"


class Listing(msgspec.Struct, frozen=True, kw_only=True):
    """One paginated resource over a projection (see module docs)."""

    name: str
    source: str
    columns: tuple[str, ...]
    keyset: tuple[str, ...]
    time_column: str | None = None
    user_column: str = "user_id"
    filters: Mapping[str, Filter] = msgspec.field(default_factory=dict)
    json_columns: frozenset[str] = frozenset()


class ListRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What a client asked for; absent filters are ``None``."""

    user_id: str
    limit: int = 100
    cursor: str | None = None
    since: str | None = None
    until: str | None = None
    descending: bool = False
    filters: Mapping[str, str | None] = msgspec.field(default_factory=dict)


class QueryError(msgspec.Struct, frozen=True):
    """A request that cannot be answered: ``code`` and which ``field``."""

    code: str
    message: str
    field: str


_CODEC_ENCODER: Final = msgspec.json.Encoder()


def encode_cursor(listing: Listing, descending: bool, keys: Sequence[Any]) -> str:
    """The opaque cursor after a row whose keyset is ``keys``."""
    raw = _CODEC_ENCODER.encode([listing.name, int(descending), list(keys)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(listing: Listing, descending: bool, text: str) -> list[Any] | QueryError:
    """The keyset a cursor holds, or why it is not a cursor of this listing and order."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        name, desc, keys = msgspec.json.decode(raw)
    except (binascii.Error, ValueError, TypeError, msgspec.DecodeError):
        return _bad_cursor("is not a cursor returned by this API")
    if name != listing.name or bool(desc) != descending:
        return _bad_cursor(f"belongs to another listing or order, not {listing.name}")
    if not isinstance(keys, list) or len(keys) != len(listing.keyset):
        return _bad_cursor("does not hold this listing's keys")
    return keys


def _bad_cursor(why: str) -> QueryError:
    return QueryError(
        code="INVALID_CURSOR",
        message=f"The cursor {why}: pass the next_cursor of the previous page unchanged.",
        field="cursor",
    )


def _time_bound(text: str, field: str) -> str | QueryError:
    try:
        return utc_text(text)
    except ValueError:
        return QueryError(
            code="INVALID_TIME",
            message=f"{field} must be an ISO-8601 time such as 2026-01-03T12:41:00Z "
            f"(naive = UTC), not {text!r}.",
            field=field,
        )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filter_clauses(listing: Listing, request: ListRequest) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    for param, spec in listing.filters.items():  # the listing's order: stable SQL
        value = request.filters.get(param)
        if not value:
            continue
        if spec.kind == "in":
            values = [v.strip() for v in value.split(",") if v.strip()]
            where.append(f"{spec.column} IN ({', '.join('?' for _ in values)})")
            args.extend(values)
        elif spec.kind == "contains":
            where.append(f"{spec.column} LIKE ? ESCAPE '\\'")
            args.append(f"%{_escape_like(value)}%")
        else:
            where.append(f"{spec.column} = ?")
            args.append(value)
    return where, args


def _range_clauses(
    listing: Listing, request: ListRequest
) -> tuple[list[str], list[Any]] | QueryError:
    where: list[str] = []
    args: list[Any] = []
    for field, op, value in (("since", ">=", request.since), ("until", "<", request.until)):
        if value is None or listing.time_column is None:
            continue
        bound = _time_bound(value, field)
        if isinstance(bound, QueryError):
            return bound
        where.append(f"{listing.time_column} {op} ?")
        args.append(bound)
    return where, args


def build_query(listing: Listing, request: ListRequest) -> tuple[str, list[Any]] | QueryError:
    """One ``SELECT`` answering ``request`` (one row more than a page is never asked)."""
    where = [f"{listing.user_column} = ?"]
    args: list[Any] = [request.user_id]
    clauses, values = _filter_clauses(listing, request)
    where += clauses
    args += values
    ranged = _range_clauses(listing, request)
    if isinstance(ranged, QueryError):
        return ranged
    where += ranged[0]
    args += ranged[1]
    if request.cursor is not None:
        keys = decode_cursor(listing, request.descending, request.cursor)
        if isinstance(keys, QueryError):
            return keys
        op = "<" if request.descending else ">"
        marks = ", ".join("?" for _ in keys)
        where.append(f"({', '.join(listing.keyset)}) {op} ({marks})")
        args += keys
    direction = " DESC" if request.descending else ""
    order = ", ".join(column + direction for column in listing.keyset)
    sql = (
        f"SELECT {', '.join(listing.columns)} FROM {listing.source} "
        f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?"
    )
    return sql, [*args, request.limit]


def rows_to_page(
    listing: Listing, request: ListRequest, rows: Sequence[Sequence[Any]]
) -> tuple[list[dict[str, Any]], str | None]:
    """The rows as JSON-ready objects, and the cursor of the next page (or ``None``)."""
    items = [_row_dict(listing, row) for row in rows]
    if len(rows) < request.limit or not rows:
        return items, None
    last = dict(zip(listing.columns, rows[-1], strict=True))
    keys = [last[column] for column in listing.keyset]
    return items, encode_cursor(listing, request.descending, keys)


def _row_dict(listing: Listing, row: Sequence[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column, value in zip(listing.columns, row, strict=True):
        if column in listing.json_columns:
            out[column.removesuffix("_json")] = (
                None if value is None else msgspec.json.decode(value)
            )
        else:
            out[column] = value
    return out


_RUN: Final = Filter("run_id")
_SYMBOL: Final = Filter("symbol")

LISTINGS: Final = {
    "runs": Listing(
        name="runs",
        source="runs",
        columns=(
            "run_id", "status", "strategy_id", "instance_id", "first_seen_utc", "started_utc",
            "ended_utc", "first_seq",
        ),
        keyset=("first_seq", "run_id"),
        time_column="first_seen_utc",
        filters={"run_id": _RUN, "status": Filter("status", "in")},
    ),
    "orders": Listing(
        name="orders",
        source="orders",
        columns=(
            "order_id", "run_id", "symbol", "side", "order_type", "quantity", "price",
            "stop_price", "time_in_force", "status", "submit_time", "event_utc",
            "parent_order_id", "strategy_id", "account_id", "first_seq", "last_seq",
        ),
        keyset=("first_seq", "order_id"),
        time_column="event_utc",
        filters={"run_id": _RUN, "symbol": _SYMBOL, "status": Filter("status", "in")},
    ),
    "executions": Listing(
        name="executions",
        source="executions",
        columns=(
            "execution_id", "order_id", "run_id", "symbol", "side", "quantity", "price",
            "commission", "fee", "fee_currency", "exec_time", "strategy_id", "account_id",
            "liquidity_flag", "seq",
        ),
        keyset=("exec_time", "seq", "execution_id"),
        time_column="exec_time",
        filters={"run_id": _RUN, "symbol": _SYMBOL, "order_id": Filter("order_id")},
    ),
    "bars": Listing(
        name="bars",
        # bars carry no owner: the run they belong to does.
        source="(SELECT b.*, r.user_id AS user_id FROM bars b JOIN runs r ON r.run_id = b.run_id)",
        columns=(
            "series_id", "ts_utc", "symbol", "timeframe", "run_id", "open", "high", "low",
            "close", "volume",
        ),
        keyset=("ts_utc", "series_id"),
        time_column="ts_utc",
        filters={
            "run_id": _RUN, "symbol": _SYMBOL, "series_id": Filter("series_id"),
            "timeframe": Filter("timeframe"),
        },
    ),
    "oco_groups": Listing(
        name="oco_groups",
        source="oco_groups",
        columns=("oco_group_id", "run_id", "created_utc", "label", "order_ids_json", "extra_json"),
        keyset=("created_utc", "oco_group_id"),
        time_column="created_utc",
        filters={"run_id": _RUN},
        json_columns=frozenset({"order_ids_json", "extra_json"}),
    ),
    "instances": Listing(
        name="instances",
        source="instances",
        columns=(
            "instance_id", "strategy_id", "run_id", "instance_name", "parameters_json",
            "symbols_json", "timeframe", "venue", "created_utc", "updated_utc",
        ),
        keyset=("instance_id",),
        time_column="updated_utc",
        filters={"run_id": _RUN, "strategy_id": Filter("strategy_id")},
        json_columns=frozenset({"parameters_json", "symbols_json"}),
    ),
    "strategies": Listing(
        name="strategies",
        source="strategies",
        columns=("strategy_id", "first_seq", "last_seq"),
        keyset=("strategy_id",),
    ),
    "logs": Listing(
        name="logs",
        source="logs",
        columns=(
            "seq", "msg_id", "source", "ts_utc", "level", "name", "message", "run_id",
            "meta_json",
        ),
        keyset=("seq",),
        time_column="ts_utc",
        filters={
            "run_id": _RUN, "source": Filter("source", "in"), "level": Filter("level", "in"),
            "text": Filter("message", "contains"),
        },
        json_columns=frozenset({"meta_json"}),
    ),
}  # fmt: skip
"""Every listing the REST API serves, by resource name."""
