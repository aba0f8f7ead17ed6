"""Bring a database schema up to date with the Alembic migrations in ``db/migrations``.

Works from any working directory: the Alembic configuration is built in code
and points at this package's ``migrations`` folder.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | URL) -> Config:
    """An Alembic ``Config`` for ``url`` using this package's migrations (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    url_text = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    # ConfigParser interpolation: a literal % (URL-encoded password) must be doubled.
    config.set_main_option("sqlalchemy.url", url_text.replace("%", "%%"))
    return config


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (blocking; not from inside a running event loop)."""
    command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str | URL, revision: str = "head") -> None:
    """:func:`upgrade` for async callers: runs in a worker thread with its own event loop."""
    await asyncio.to_thread(upgrade, url, revision)
