"""Bring a database schema up to date with the Alembic migrations in ``db/migrations``, and make sure it is usable.

Works from any working directory: the Alembic configuration is built in code
and points at this package's ``migrations`` folder.

:func:`upgrade` is the start of ``voice2anime run`` and all of ``voice2anime
migrate``: a database the bot cannot use — a file that is not an SQLite
database (damaged, or something else), or one it cannot write (a read-only
file, directory or connection, a read-only PostgreSQL role or server) — stops
it there with :class:`DatabaseUnusableError`, one line naming ``DATABASE_URL``,
instead of every message failing later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import pool, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from db.session import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Exit code of a dependency the command cannot use (the CLI's contract, ``bot.startup_errors.UNAVAILABLE``).
UNAVAILABLE = 3
#: SQLite result codes (``sqlite3.Error.sqlite_errorname``, extended codes by prefix) of a file that is not a database.
_NOT_A_DATABASE = ("SQLITE_NOTADB", "SQLITE_CORRUPT")
#: ... and of a database that cannot be written.
_NOT_WRITABLE = ("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_FULL")
#: ... and of one SQLite cannot open for writing (on a read-only file system it cannot create the ``-wal``/``-shm`` files).
_CANNOT_OPEN = ("SQLITE_CANTOPEN",)
#: PostgreSQL SQLSTATEs of a database that cannot be written: a read-only transaction (standby, read-only setting),
#: a role without the right, a full disk.
_PG_NOT_WRITABLE = ("25006", "42501", "53100")


class DatabaseUnusableError(Exception):
    """The database ``DATABASE_URL`` names is there but cannot be used: not a database, or not writable.

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
    """Migrate the database at ``url`` to ``revision``, then check that it can be written (blocking).

    Not from inside a running event loop. Raises :class:`DatabaseUnusableError`
    for a database that is not one or cannot be written; a database that
    cannot be reached raises the driver's error (``bot.startup_errors.reaching``
    names it).
    """
    with _usable(url):
        command.upgrade(alembic_config(url), revision)
        asyncio.run(_try_a_write(url))


async def upgrade_async(url: str | URL, revision: str = "head") -> None:
    """:func:`upgrade` for async callers: runs in a worker thread with its own event loop."""
    await asyncio.to_thread(upgrade, url, revision)


async def _try_a_write(url: str | URL) -> None:
    """Write to the database and roll it back: nothing changes, but a database that cannot be written says so.

    Migrating an up-to-date schema only reads, so a read-only database would
    otherwise go unnoticed until the first message. SQLite refuses a write
    transaction on a read-only file or connection when the statement starts.
    """
    engine = make_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            transaction = await connection.begin()
            try:
                await connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
            finally:
                await transaction.rollback()
    finally:
        await engine.dispose()


@contextmanager
def _usable(url: str | URL) -> Iterator[None]:
    """Turn the driver's "not a database" / "cannot write" errors inside the block into :class:`DatabaseUnusableError`."""
    try:
        yield
    except DBAPIError as error:
        problem = _problem(error)
        if problem is None:
            raise
        where = make_url(url).render_as_string(hide_password=True)
        reason = str(error.orig).split("\n", 1)[0].strip() or type(error.orig).__name__
        if problem == "not a database":
            fix = "the file is damaged or is not an SQLite database; restore it from a backup, or point DATABASE_URL at a new file"
            raise DatabaseUnusableError(f"cannot use the database {where} (DATABASE_URL): {reason} — {fix}") from None
        fix = "the bot must be able to write it (for SQLite: the file and its directory, on a writable file system)"
        verb = "open" if problem == "cannot open" else "write to"
        raise DatabaseUnusableError(f"cannot {verb} the database {where} (DATABASE_URL): {reason} — {fix}") from None


def _problem(error: DBAPIError) -> str | None:
    """"not a database", "not writable", "cannot open", or None for any other error (unreachable, a bug: not ours)."""
    name = str(getattr(error.orig, "sqlite_errorname", ""))
    if name.startswith(_NOT_A_DATABASE):
        return "not a database"
    if name.startswith(_CANNOT_OPEN):
        return "cannot open"
    if name.startswith(_NOT_WRITABLE) or getattr(error.orig, "sqlstate", None) in _PG_NOT_WRITABLE:
        return "not writable"
    return None
