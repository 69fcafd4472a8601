"""Command-line tools of platform ingest: ``keys``, ``rebuild`` and ``ingest``.

Both work on the store of ``--data-dir`` directly (``keys`` also while a
gateway runs on it: it writes through SQLite transactions).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tradewire.cli import common_options, reports_errors, settings_from
from tradewire.ingest.keyring import create_key, list_keys, revoke_key
from tradewire.ingest.replay import ReplaySummary, replay_file
from tradewire.projections import all_projectors
from tradewire.sdk.connector import Connector
from tradewire.store.sqlite import SqliteStore, open_store

__all__ = ["ingest", "keys", "rebuild"]

T = TypeVar("T")


def _with_store(data_dir: Path, job: Callable[[SqliteStore], Awaitable[T]]) -> T:
    async def run() -> T:
        async with await open_store(data_dir, "fsync", projectors=all_projectors()) as store:
            return await job(store)

    return asyncio.run(run())


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@click.group()
def keys() -> None:
    """Create, list and revoke the API keys of ingest connectors."""


@keys.command("create")
@common_options
@click.option("--user", "user_id", required=True, help="The user who owns the key and its runs.")
@click.option("--label", default=None, help="A note to recognise the key by (e.g. the host).")
@reports_errors
def keys_create(
    config_file: Path | None, data_dir: Path | None, user_id: str, label: str | None
) -> None:
    """Create a key for USER and print it (shown once: only its hash is stored)."""
    settings = settings_from(config_file, data_dir=data_dir)
    issued = _with_store(settings.data_dir, lambda s: create_key(s, user_id, label=label))
    click.echo(issued.text)
    click.echo(
        f"key id {issued.key_id} for user {user_id}: keep the key, it is not stored", err=True
    )


@keys.command("revoke")
@common_options
@click.argument("key_id")
@reports_errors
def keys_revoke(config_file: Path | None, data_dir: Path | None, key_id: str) -> None:
    """Revoke KEY_ID (the 16 hex digits after twk_); it stops working at once."""
    settings = settings_from(config_file, data_dir=data_dir)
    key_id = key_id.removeprefix("twk_").split("_", 1)[0]
    stored = _with_store(settings.data_dir, lambda s: revoke_key(s, key_id))
    if stored is None:
        click.echo(f"tradewire: error: no key {key_id!r} (see `tradewire keys list`)", err=True)
        raise SystemExit(2)
    click.echo(f"revoked {key_id} (user {stored.user_id})")


def _stamp(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@keys.command("list")
@common_options
@click.option("--user", "user_id", default=None, help="Only this user's keys.")
@reports_errors
def keys_list(config_file: Path | None, data_dir: Path | None, user_id: str | None) -> None:
    """List keys: id, user, label, created, revoked (never the secret)."""
    settings = settings_from(config_file, data_dir=data_dir)
    found = _with_store(settings.data_dir, lambda s: list_keys(s, user_id))
    table = Table("key_id", "user", "label", "created", "revoked")
    for key in found:
        row = (key.key_id, key.user_id, key.label or "", _stamp(key.created_at_ms))
        table.add_row(*row, _stamp(key.revoked_at_ms))
    Console(width=120).print(table)


@click.command()
@common_options
@reports_errors
def rebuild(config_file: Path | None, data_dir: Path | None) -> None:
    """Replay the event store into fresh projections (runs, orders, ...)."""
    from tradewire.ingest.rebuild import count_records, rebuild_projections

    settings = settings_from(config_file, data_dir=data_dir)
    projectors = all_projectors()
    streams = sorted({s for p in projectors for s in p.streams})
    total = count_records(settings.data_dir, streams)
    console = Console(stderr=True)
    with _progress(console) as bar:
        task = bar.add_task("rebuilding projections", total=total)
        report = rebuild_projections(settings.data_dir, projectors, lambda n: bar.advance(task, n))
    click.echo(f"rebuilt projections from {report.replayed} records ({report.refused} refused)")


# --- tradewire ingest FILE.jsonl ------------------------------------------------------


def _count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


@click.command("ingest")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--url",
    default="ws://127.0.0.1:8765/ws/ingest",
    show_default=True,
    envvar="TRADEWIRE_INGEST_URL",
    help="The gateway's /ws/ingest URL.",
)
@click.option("--key", required=True, envvar="TRADEWIRE_KEY", help="An API key (twk_...).")
@click.option("--window", default=1024, show_default=True, help="Messages in flight at most.")
@reports_errors
def ingest(file: Path, url: str, key: str, window: int) -> None:
    """Replay FILE (one envelope per line) through /ws/ingest, with progress and a summary.

    Resent messages are stored once, so an interrupted replay can simply be
    run again. Exits 1 when a message was rejected.
    """
    summary = ReplaySummary()
    console = Console(stderr=True)
    with _progress(console) as bar:
        task = bar.add_task(f"ingesting {file.name}", total=_count_lines(file))

        async def run() -> None:
            async with Connector(url, key, source="tradewire-ingest", window=window) as conn:
                await replay_file(file, conn, summary, lambda: bar.advance(task))

        asyncio.run(run())
    table = Table("outcome", "messages", "example", title="ingest summary")
    for outcome, count, example in summary.rows():
        table.add_row(outcome, str(count), example)
    Console(width=120).print(table)
    if summary.total_rejected:
        raise SystemExit(1)


def _register() -> None:
    # cli.py adds ``keys`` and ``rebuild`` when it imports this module; ``ingest``
    # joins them here so that the ingest commands stay in one place.
    from tradewire.cli import cli

    cli.add_command(ingest)


_register()
