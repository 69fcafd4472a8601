"""Versioned schema migrations of the store, run with Alembic from code.

No ``alembic.ini`` is needed at runtime: :func:`upgrade_schema` builds the
Alembic ``Config`` in code, points ``script_location`` at this package and
hands Alembic an open SQLAlchemy connection, so opening an older data
directory upgrades it in place. ``env.py`` never touches logging
configuration (no ``fileConfig``): the host process owns its loggers.

Migrations use portable ``op.*`` calls only, so the same revisions build the
PostgreSQL schema.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

__all__ = [
    "SCRIPT_LOCATION",
    "current_revision",
    "head_revision",
    "sqlite_url",
    "upgrade_schema",
]

SCRIPT_LOCATION = Path(__file__).resolve().parent
"""Directory holding ``env.py`` and ``versions/``."""


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("path_separator", "os")
    return cfg


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.NullPool)


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite database file."""
    return f"sqlite:///{path}"


def upgrade_schema(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (a no-op when already there)."""
    engine = _engine(url)
    try:
        with engine.begin() as connection:
            cfg = _config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (``None`` when unversioned)."""
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest revision shipped with this version of tradewire."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "no migration revisions shipped"
    return head
