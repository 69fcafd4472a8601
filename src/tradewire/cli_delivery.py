"""Command-line tools of user-event delivery: ``send`` and ``status``.

``send`` is a one-shot container built on :class:`tradewire.sdk.Container`
(so it has the same durable outbox and resend rules); ``status`` reads an
event's delivery history straight from the store of ``--data-dir``.

Exit codes of ``send``: 0 delivered (or sent on the fast path, or QUEUED
with ``--wait first``, or handed over with ``--wait none``), 1 ACK_ERROR or
dropped, 2 usage error, 3 timeout.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from tradewire.cli import common_options, reports_errors, settings_from
from tradewire.sdk.container import DEFAULT_ROUTER, DEFAULT_SUB, Container, Publication, Route
from tradewire.wire import AckStatus, ChannelType, EventAck, EventType, Priority

__all__ = ["send", "status"]

EXIT_DELIVERED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3


def ack_line(ack: EventAck) -> str:
    """One line per ack: ``QUEUED id``, ``DELIVERED id via WEB``, ``ACK_ERROR id: why``."""
    if ack.status is AckStatus.DELIVERED:
        return f"DELIVERED {ack.event_id} via {ack.delivered_via.name}"
    if ack.status is AckStatus.QUEUED:
        return f"QUEUED {ack.event_id}"
    return f"ACK_ERROR {ack.event_id}: {ack.error_message}"


def _parse_payload(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--payload") from None
    if not isinstance(doc, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--payload")
    return doc


def _parse_channels(text: str | None) -> list[ChannelType]:
    if not text:
        return []
    names = [n.strip().upper() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ChannelType.__members__]
    if unknown:
        allowed = ", ".join(ChannelType.__members__)
        raise click.BadParameter(
            f"unknown {', '.join(unknown)} (one of {allowed})", param_hint="--channels"
        )
    return [ChannelType[n] for n in names]


async def _send(outbox: Path, gateway: str, sub: str, wait: str, event: dict[str, Any]) -> int:
    async with Container(outbox, router=gateway, sub=sub, on_ack=_print_ack) as container:
        if event["priority"] is not Priority.CRITICAL:
            await container.wait_connected()  # the fast path needs the live subscriptions
        publication = await container.publish(**event)
        return await _outcome(publication, wait)


def _print_ack(_: Publication, ack: EventAck) -> None:
    click.echo(ack_line(ack))


async def _outcome(publication: Publication, wait: str) -> int:
    if publication.route is not Route.GUARANTEED:
        click.echo(f"{publication.outcome.upper()} {publication.event_id}")
        return EXIT_FAILED if publication.route is Route.DROPPED else EXIT_DELIVERED
    if wait == "none":
        click.echo(f"SENT {publication.event_id}")
        return EXIT_DELIVERED
    ack = await (publication.first_ack() if wait == "first" else publication.final())
    return EXIT_FAILED if ack is None or ack.status is AckStatus.ACK_ERROR else EXIT_DELIVERED


@click.command()
@click.option("--user", "user_id", required=True, help="The user the event is for.")
@click.option(
    "--type",
    "event_type",
    required=True,
    type=click.Choice(list(EventType.__members__), case_sensitive=False),
    help="EventType name, e.g. ORDER_FILLED.",
)
@click.option(
    "--priority",
    type=click.Choice(list(Priority.__members__), case_sensitive=False),
    default="CRITICAL",
    show_default=True,
)
@click.option("--payload", default="{}", help="The payload as a JSON object (money as strings).")
@click.option("--channels", default=None, help="Ordered channel list, e.g. WEB,TELEGRAM.")
@click.option("--event-id", default=None, help="Event id (default: a new UUID).")
@click.option("--gateway", default=DEFAULT_ROUTER, show_default=True, help="The gateway ROUTER.")
@click.option("--sub", default=DEFAULT_SUB, show_default=True, help="The gateway SUB (fast path).")
@click.option(
    "--wait",
    type=click.Choice(["final", "first", "none"]),
    default="final",
    show_default=True,
    help="Wait for the final ack, the first ack, or only until the event is sent.",
)
@click.option("--timeout", type=click.FloatRange(min=0), default=30.0, show_default=True)
@click.option(
    "--outbox",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Durable outbox file (default: a temporary one, deleted on exit).",
)
@reports_errors
def send(
    user_id: str,
    event_type: str,
    priority: str,
    payload: str,
    channels: str | None,
    event_id: str | None,
    gateway: str,
    sub: str,
    wait: str,
    timeout: float,
    outbox: Path | None,
) -> None:
    """Publish one user event through the SDK and print each ack as it arrives."""
    event = {
        "user_id": user_id,
        "event_type": EventType[event_type.upper()],
        "payload": _parse_payload(payload),
        "priority": Priority[priority.upper()],
        "channels": _parse_channels(channels),
        "event_id": event_id,
    }
    with tempfile.TemporaryDirectory(prefix="tradewire-send-") as tmp:
        path = outbox or Path(tmp) / "outbox.db"
        try:
            code = asyncio.run(asyncio.wait_for(_send(path, gateway, sub, wait, event), timeout))
        except TimeoutError:
            click.echo(f"tradewire: error: no {wait} ack within {timeout:g} s", err=True)
            code = EXIT_TIMEOUT
    raise SystemExit(code)


def _stamp(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%fZ")[:-4]


def _history_table(doc: dict[str, Any]) -> Table:
    title = (
        f"{doc['event_id']}  user={doc['user_id']}  {doc['event_type']}  {doc['priority']}\n"
        f"state={doc['state']}  via={doc['delivered_via'] or '-'}  attempts={doc['attempt_count']}"
        + (f"  reason={doc['reason']}" if doc["reason"] else "")
    )
    table = Table("attempt", "channel", "outcome", "error", "at", title=title)
    for a in doc["attempts"]:
        table.add_row(
            str(a["attempt"]),
            a["channel"] or "",
            a["outcome"],
            a["error"] or "",
            _stamp(a["at_ms"]),
        )
    return table


async def _history(data_dir: Path, event_id: str) -> dict[str, Any] | None:
    from tradewire.server.delivery_store import event_history
    from tradewire.store.sqlite import open_store

    async with await open_store(data_dir) as store:
        return await event_history(store, event_id)


@click.command()
@common_options
@click.argument("event_id")
@reports_errors
def status(config_file: Path | None, data_dir: Path | None, event_id: str) -> None:
    """Print EVENT_ID's delivery status and attempt history from the store."""
    settings = settings_from(config_file, data_dir=data_dir)
    doc = asyncio.run(_history(settings.data_dir, event_id))
    if doc is None:
        click.echo(
            f"tradewire: error: no event {event_id!r} in {settings.data_dir} "
            "(INFORMATIONAL events and events never accepted are not stored)",
            err=True,
        )
        raise SystemExit(1)
    Console(width=120).print(_history_table(doc))
