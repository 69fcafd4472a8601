"""Alembic environment of the store: online migrations on a given connection.

Deliberately does not call ``logging.config.fileConfig``: tradewire runs
migrations inside the host process, whose logging it must not reconfigure.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context


def _run_on(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = context.config.attributes.get("connection")
    if isinstance(connection, sa.Connection):
        _run_on(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("tradewire migrations need a connection or sqlalchemy.url")
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.begin() as connection:
            _run_on(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("tradewire migrations run online only")
_run_online()
