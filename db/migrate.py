"""Bring a database schema up to date with the Alembic migrations in ``db/migrations``, and make sure it is usable.

Works from any working directory: the Alembic configuration is built in code
and points at this package's ``migrations`` folder.

:func:`upgrade` is the start of ``voice2anime run`` and all of ``voice2anime
migrate``: a file that is not an SQLite database (damaged, or something
else) stops it there with :class:`DatabaseUnusableError`, one line naming
``DATABASE_URL``, not with the driver's tracebacks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Exit code of a dependency the command cannot use (the CLI's contract, ``bot.startup_errors.UNAVAILABLE``).
UNAVAILABLE = 3
#: SQLite result codes (``sqlite3.Error.sqlite_errorname``, extended codes by prefix) of a file that is not a database.
_NOT_A_DATABASE = ("SQLITE_NOTADB", "SQLITE_CORRUPT")


class DatabaseUnusableError(Exception):
    """The database ``DATABASE_URL`` names is there but cannot be used: not a database.

    The message is one line naming ``DATABASE_URL`` and where it points
    (never its password); ``exit_code`` is 3, as for a database that cannot
    be reached (:mod:`bot.startup_errors` prints it so).
    """

    exit_code = UNAVAILABLE


def alembic_config(url: str | URL) -> Config:
    """An Alembic ``Config`` for ``url`` using this package's migrations (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    url_text = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    # ConfigParser interpolation: a literal % (URL-encoded password) must be doubled.
    config.set_main_option("sqlalchemy.url", url_text.replace("%", "%%"))
    return config


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (blocking; not from inside a running event loop).

    Raises :class:`DatabaseUnusableError` for a file that is not a database; a
    database that cannot be reached raises the driver's error
    (``bot.startup_errors.reaching`` names it).
    """
    with _usable(url):
        command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str | URL, revision: str = "head") -> None:
    """:func:`upgrade` for async callers: runs in a worker thread with its own event loop."""
    await asyncio.to_thread(upgrade, url, revision)


@contextmanager
def _usable(url: str | URL) -> Iterator[None]:
    """Turn the driver's "not a database" errors inside the block into :class:`DatabaseUnusableError`."""
    try:
        yield
    except DBAPIError as error:
        problem = _problem(error)
        if problem is None:
            raise
        where = make_url(url).render_as_string(hide_password=True)
        reason = str(error.orig).split("\n", 1)[0].strip() or type(error.orig).__name__
        fix = "the file is damaged or is not an SQLite database; restore it from a backup, or point DATABASE_URL at a new file"
        raise DatabaseUnusableError(f"cannot use the database {where} (DATABASE_URL): {reason} — {fix}") from None


def _problem(error: DBAPIError) -> str | None:
    """"not a database", or None for any other error (unreachable, a bug: not ours to name)."""
    name = str(getattr(error.orig, "sqlite_errorname", ""))
    return "not a database" if name.startswith(_NOT_A_DATABASE) else None
