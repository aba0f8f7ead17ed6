"""Alembic environment: runs migrations over the project's async engine.

The URL comes from the Alembic config (``db.migrate`` sets it), else the
``DATABASE_URL`` environment variable, else the default SQLite file. SQLite
uses batch mode (``render_as_batch``) because it cannot ALTER most things in
place, and the migration engine leaves foreign-key enforcement off so batch
table rebuilds cannot cascade-delete rows.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import pool
from sqlalchemy.engine import Connection

from db.columns import UTCDateTime
from db.models import Base
from db.session import DEFAULT_URL, make_engine

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    """The URL to migrate."""
    return config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL") or DEFAULT_URL


def _render_item(kind: str, obj: Any, _autogen_context: AutogenContext) -> str | Literal[False]:
    """Autogenerate writes the project's UTC timestamp type as plain ``sa.DateTime(timezone=True)``."""
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(**kwargs: Any) -> None:
    context.configure(target_metadata=target_metadata, compare_type=True, render_item=_render_item, **kwargs)


def run_migrations_offline() -> None:
    """Emit the migration SQL to stdout instead of running it (``alembic upgrade --sql``)."""
    url = database_url()
    _configure(url=url, literal_binds=True, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def _run_migrations(connection: Connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    """Connect with the async engine and run the migrations on a sync facade of the connection."""
    engine = make_engine(database_url(), foreign_keys=False, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
