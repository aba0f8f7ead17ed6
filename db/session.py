"""Engine and session factory for the history database.

SQLite (``sqlite+aiosqlite``) is the default; PostgreSQL (``postgresql+asyncpg``)
is chosen by URL. Every new SQLite connection is configured for a bot that
writes from several coroutines at once: WAL (readers never block the writer),
a busy timeout (writers wait instead of failing with "database is locked"),
foreign keys enforced and ``synchronous=NORMAL`` (durable with WAL, faster).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url

if TYPE_CHECKING:  # the async engine (and the ORM it loads) only once a database is opened, not when DATABASE_URL is checked
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from db.units import Units, Work

T = TypeVar("T")

#: Used when no DATABASE_URL is configured (relative to the working directory).
DEFAULT_URL = "sqlite+aiosqlite:///data/voice2anime.db"
#: How long (ms) a SQLite connection waits for a lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 5000
#: How long (s) opening a PostgreSQL connection may take (asyncpg's own default is 60 s):
#: a server that does not answer fails the start-up quickly instead of hanging.
CONNECT_TIMEOUT_SECONDS = 10.0
#: Units of work use at most this many PostgreSQL connections, opened when needed and then kept open (``db.units``).
PG_CONNECTIONS = 10
#: The (backend, driver) pairs the history database runs on.
SUPPORTED_DRIVERS = {("sqlite", "aiosqlite"), ("postgresql", "asyncpg")}
_URL_SHAPES = (
    "sqlite+aiosqlite:///path/to/file.db or postgresql+asyncpg://host[:port]/database (with user:password before the host)"
)


def check_url(url: str | URL) -> URL:
    """``url`` parsed, or ``ValueError`` saying what shape is expected.

    The message never contains the URL (it may hold a password); at most its
    scheme. Catches what would otherwise fail later and obscurely: text that is
    not a URL, a non-numeric port, a sync or unknown driver, an SQLite URL
    without a file.
    """
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - a non-numeric port only fails when read
    except Exception:
        raise ValueError(f"not a database URL; expected {_URL_SHAPES}") from None
    pair = (parsed.get_backend_name(), parsed.get_driver_name())
    if pair not in SUPPORTED_DRIVERS:
        raise ValueError(f"unsupported database scheme {parsed.drivername!r}; expected {_URL_SHAPES}")
    if pair[0] == "sqlite" and not parsed.database:
        raise ValueError(f"the SQLite URL names no file; expected {_URL_SHAPES}")
    return parsed


def sqlite_pragmas(*, foreign_keys: bool) -> tuple[str, ...]:
    """The PRAGMA statements run on every new SQLite connection (busy_timeout first, so the WAL switch can wait)."""
    return (
        f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}",
    )


def _ensure_sqlite_directory(url: URL) -> None:
    """SQLite creates the file but not its directory: create ``data/`` and friends."""
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str | URL, *, foreign_keys: bool = True, **kwargs: Any) -> AsyncEngine:
    """An ``AsyncEngine`` for ``url`` with the SQLite pragmas installed on every connection.

    ``foreign_keys=False`` is for migrations only: SQLite batch migrations
    rebuild tables, and dropping a parent table with enforcement on would
    cascade-delete its children. ``kwargs`` go to ``create_async_engine``
    (``pool_pre_ping`` defaults to on, so a restarted PostgreSQL server does
    not leave dead connections in the pool; PostgreSQL connections time out
    after :data:`CONNECT_TIMEOUT_SECONDS` unless ``connect_args`` says otherwise).
    """
    from sqlalchemy.ext.asyncio import create_async_engine

    url = make_url(url)
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "asyncpg":
        kwargs["connect_args"] = {"timeout": CONNECT_TIMEOUT_SECONDS, **kwargs.get("connect_args", {})}
    engine = create_async_engine(url, **{"pool_pre_ping": True, **kwargs})
    if url.get_backend_name() == "sqlite":
        _ensure_sqlite_directory(url)
        pragmas = sqlite_pragmas(foreign_keys=foreign_keys)

        @event.listens_for(engine.sync_engine, "connect")
        def _configure(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                for pragma in pragmas:
                    cursor.execute(pragma)
            finally:
                cursor.close()

    return engine


@dataclass(frozen=True)
class Database:
    """An open database: the engine and a session factory (``expire_on_commit=False``)."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    #: Where :meth:`run` runs units of work (``db.units``): SQLite's connection on the event loop, or the engine's pool.
    units: Units

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    async def run(self, work: Work[T], *, write: bool = True, single: bool = False, exclusive: bool = False) -> T:
        """``work(statements)`` in one transaction: see ``db.units.Units.run``."""
        return await self.units.run(work, write=write, single=single, exclusive=exclusive)

    async def dispose(self) -> None:
        """Close every pooled connection (and the connections of SQLite's units)."""
        await self.units.close()
        await self.engine.dispose()


def create_database(url: str | URL = DEFAULT_URL, **engine_kwargs: Any) -> Database:
    """Open the database at ``url`` (no I/O happens until the first query)."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from db.units import EngineUnits, SQLiteUnits

    if make_url(url).get_backend_name() == "postgresql":
        # No ping per checkout (a round trip each time): a unit found on a dead connection runs again (db.units).
        engine_kwargs.setdefault("pool_pre_ping", False)
        engine_kwargs.setdefault("pool_size", PG_CONNECTIONS)  # the units' (kept); the overflow is for the ORM sessions
    engine = make_engine(url, **engine_kwargs)
    units: Units
    if engine.dialect.name == "sqlite":
        units = SQLiteUnits(engine.url, sqlite_pragmas(foreign_keys=engine_kwargs.get("foreign_keys", True)))
    else:
        units = EngineUnits(engine, connections=engine_kwargs["pool_size"])
    return Database(engine=engine, sessions=async_sessionmaker(engine, expire_on_commit=False), units=units)
