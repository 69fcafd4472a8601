"""``tradewire users``: the user directory (addresses, preferences, Telegram linking).

Every change is a record of the store's ``users`` stream, so it works while
the gateway runs and survives ``tradewire rebuild``. Webhook URLs are
credentials: ``show`` and ``list`` print only their origin.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from tradewire.channels._recipient import parse_allowed_hosts
from tradewire.cli import common_options, reports_errors, settings_from
from tradewire.projections import all_projectors
from tradewire.store.sqlite import SqliteStore, open_store
from tradewire.users import (
    ProfileChange,
    StoreDirectory,
    issue_telegram_code,
    list_profiles,
    update_profile,
)
from tradewire.users.view import profile_view

__all__ = ["users"]

T = TypeVar("T")


def _with_store(data_dir: Path, job: Callable[[SqliteStore], Awaitable[T]]) -> T:
    async def run() -> T:
        async with await open_store(data_dir, "fsync", projectors=all_projectors()) as store:
            return await job(store)

    return asyncio.run(run())


@click.group()
def users() -> None:
    """Where each user is reached, and what they want to be told."""


@users.command("set")
@common_options
@click.argument("user_id")
@click.option("--email", default=None, help="Email address ('' clears it).")
@click.option("--telegram-chat", "telegram_chat_id", default=None, help="Telegram chat id.")
@click.option("--discord-webhook", "discord_webhook_url", default=None, help="Discord webhook URL.")
@click.option("--slack-webhook", "slack_webhook_url", default=None, help="Slack webhook URL.")
@click.option("--webhook-url", default=None, help="Generic signed-webhook URL.")
@click.option("--webhook-secret", default=None, help="HMAC-SHA256 key for the webhook.")
@click.option("--apprise-url", default=None, help="An Apprise URL (mailto://, ntfy://, ...).")
@click.option("--timezone", default=None, help="IANA time zone for quiet hours, e.g. Europe/Rome.")
@click.option("--name", "display_name", default=None, help="Display name.")
@click.option("--quiet-hours", default=None, help="Daily window like 22:00-07:00; 'off' clears.")
@click.option(
    "--opt-out",
    "opt_outs",
    multiple=True,
    help="EVENT_TYPE:CHANNEL not to notify (repeatable; * for any). Replaces the list.",
)
@click.option("--clear-opt-outs", is_flag=True, help="Remove every opt-out.")
@reports_errors
def users_set(
    config_file: Path | None,
    data_dir: Path | None,
    user_id: str,
    opt_outs: tuple[str, ...],
    clear_opt_outs: bool,
    quiet_hours: str | None,
    **fields: Any,
) -> None:
    """Change USER_ID's addresses or preferences (only the options given)."""
    settings = settings_from(config_file, data_dir=data_dir)
    change = ProfileChange(
        **fields,
        quiet_hours="" if quiet_hours == "off" else quiet_hours,
        opt_outs=[] if clear_opt_outs else (list(opt_outs) or None),
    )
    try:
        hosts = parse_allowed_hosts(settings.webhook_allowed_hosts)
        profile = _with_store(
            settings.data_dir, lambda s: update_profile(s, user_id, change, hosts)
        )
    except ValueError as exc:
        field, message = exc.args
        raise click.BadParameter(message, param_hint=f"--{field.replace('_', '-')}") from None
    click.echo(json.dumps(profile_view(profile), indent=2))


@users.command("show")
@common_options
@click.argument("user_id")
@reports_errors
def users_show(config_file: Path | None, data_dir: Path | None, user_id: str) -> None:
    """Print USER_ID's profile as JSON (webhook URLs masked)."""
    settings = settings_from(config_file, data_dir=data_dir)
    profile = _with_store(settings.data_dir, lambda s: StoreDirectory(s).profile(user_id))
    if profile is None:
        click.echo(
            f"tradewire: error: no profile for {user_id!r}; create one with "
            f"'tradewire users set {user_id} --email ...'",
            err=True,
        )
        raise SystemExit(1)
    click.echo(json.dumps(profile_view(profile), indent=2))


@users.command("list")
@common_options
@reports_errors
def users_list(config_file: Path | None, data_dir: Path | None) -> None:
    """List every user of the directory and the channels that reach them."""
    settings = settings_from(config_file, data_dir=data_dir)
    table = Table("user", "email", "telegram", "push", "discord", "slack", "webhook", "quiet")
    for p in _with_store(settings.data_dir, list_profiles):
        marks = [bool(x) for x in (p.discord_webhook_url, p.slack_webhook_url, p.webhook_url)]
        table.add_row(
            p.user_id,
            p.email,
            p.telegram_chat_id,
            str(len(p.push_subscriptions)),
            *("yes" if m else "" for m in marks),
            str(p.quiet_hours or ""),
        )
    Console(width=140).print(table)


@users.command("telegram-code")
@common_options
@click.argument("user_id")
@reports_errors
def users_telegram_code(config_file: Path | None, data_dir: Path | None, user_id: str) -> None:
    """Print a one-time code that links USER_ID's Telegram chat (valid 15 minutes)."""
    settings = settings_from(config_file, data_dir=data_dir)
    code = _with_store(settings.data_dir, lambda s: issue_telegram_code(s, user_id))
    click.echo(code)
    click.echo(f"send '/start {code}' to the bot from the chat to link", err=True)
