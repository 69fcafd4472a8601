"""The ``tradewire`` command line.

Every command takes ``--data-dir`` (``TRADEWIRE_DATA_DIR``) and ``--config``
(``TRADEWIRE_CONFIG``) and works on the same store. Errors print one line
saying what to do next and exit with status 2.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from tradewire import __version__
from tradewire.config import Settings, load_settings
from tradewire.errors import ConfigError, TradewireError

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])


def common_options(fn: F) -> F:
    """``--data-dir`` and ``--config``, shared by every command."""
    fn = click.option(
        "--config",
        "config_file",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="TOML config file (env TRADEWIRE_CONFIG).",
    )(fn)
    fn = click.option(
        "--data-dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Where the store lives (env TRADEWIRE_DATA_DIR; default ~/.local/share/tradewire).",
    )(fn)
    return fn


def settings_from(config_file: Path | None, **flags: Any) -> Settings:
    """Resolve settings: flag > TRADEWIRE_* env > TOML file > default."""
    return load_settings(flags, config_file=config_file)


def reports_errors(fn: F) -> F:
    """Turn a TradewireError into one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TradewireError as exc:
            click.echo(f"tradewire: error: {exc}", err=True)
            hint = getattr(exc, "hint", None)
            if isinstance(exc, ConfigError) and hint and hint not in str(exc):
                click.echo(f"tradewire: hint: {hint}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tradewire")
def cli() -> None:
    """tradewire: event backbone of a trading platform.

    Ingests what trading connectors and strategy containers emit and gets
    every event that matters to the right user, with proof of delivery.
    """


@cli.command()
@common_options
@click.option(
    "--host",
    default=None,
    help="Address to bind every socket to (env TRADEWIRE_HOST; default 127.0.0.1).",
)
@click.option(
    "--http-port",
    type=int,
    default=None,
    help="HTTP + WebSocket port (env TRADEWIRE_HTTP_PORT; default 8765).",
)
@click.option(
    "--zmq-sub-port",
    type=int,
    default=None,
    help="ZeroMQ SUB port, fast path (env TRADEWIRE_ZMQ_SUB_PORT; default 5570).",
)
@click.option(
    "--zmq-router-port",
    type=int,
    default=None,
    help="ZeroMQ ROUTER port, guaranteed path (env TRADEWIRE_ZMQ_ROUTER_PORT; default 5571).",
)
@click.option(
    "--durability",
    type=click.Choice(["fsync", "os"]),
    default=None,
    help="fsync: survive power loss (default); os: survive a process kill.",
)
@click.option(
    "--store-writer",
    type=click.Choice(["process", "thread"]),
    default=None,
    help="Where the store's writer runs: a thread (default) or a process of its own.",
)
@reports_errors
def serve(config_file: Path | None, **flags: Any) -> None:
    """Start the gateway; prints 'tradewire ready' once every socket listens."""
    from tradewire._logging import configure_logging
    from tradewire.server import run_gateway

    settings = settings_from(config_file, **flags)
    configure_logging(settings.log_level, settings.log_format)
    sys.exit(run_gateway(settings))


@cli.command()
@common_options
@click.argument("user_id")
@click.option(
    "--ttl", type=click.IntRange(min=1), default=24 * 3600, show_default=True, help="Seconds valid."
)
@reports_errors
def token(config_file: Path | None, data_dir: Path | None, user_id: str, ttl: int) -> None:
    """Print a session token for USER_ID (for /ws/session?token=T)."""
    import time

    from tradewire.auth import SessionTokens, load_or_create_secret

    settings = settings_from(config_file, data_dir=data_dir)
    tokens = SessionTokens(load_or_create_secret(settings.data_dir))
    click.echo(tokens.issue(user_id, now=int(time.time()), ttl_seconds=ttl))


def _add_ingest_commands() -> None:
    """Platform ingest (#5): ``keys``, ``rebuild`` (cli_ingest imports this module)."""
    from tradewire.cli_ingest import keys, rebuild

    cli.add_command(keys)
    cli.add_command(rebuild)


_add_ingest_commands()


def _add_delivery_commands() -> None:
    """User-event delivery (#3): ``send``, ``status`` (cli_delivery imports this module)."""
    from tradewire.cli_delivery import send, status

    cli.add_command(send)
    cli.add_command(status)


_add_delivery_commands()


def _add_user_commands() -> None:
    """The user directory (#4): ``users`` (cli_users imports this module)."""
    from tradewire.cli_users import users

    cli.add_command(users)


_add_user_commands()


def _add_report_commands() -> None:
    """Run analytics (#6): ``report`` (cli_report imports this module)."""
    from tradewire.cli_report import report

    cli.add_command(report)


_add_report_commands()


def main() -> None:
    """Entry point of the ``tradewire`` script."""
    cli(prog_name="tradewire")
