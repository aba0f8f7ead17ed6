"""Units of work: one transaction per call, run where the database is cheapest to reach.

A unit is a plain function ``work(connection) -> value`` over a synchronous
SQLAlchemy :class:`~sqlalchemy.engine.Connection`; :meth:`Units.run` runs it
in one transaction and hands back its value (or its exception, after a
rollback). The repository writes each of its methods as one unit, so a method
costs one transaction whatever number of statements it needs. Statements run
through SQLAlchemy's public API (``Connection.execute``): each is compiled
once per set of parameter names and served from the compiled cache after.

* **SQLite** — :class:`SQLiteUnits`. A statement on SQLite takes
  microseconds; what used to cost was getting to it: aiosqlite posts every
  driver call (execute, fetch, commit, cursor close, the pool's reset) to its
  thread and back, a thread wake-up and a GIL hand-over each, tens of them
  per event. Here a unit runs *on the event loop*, on one ``pysqlite``
  connection, with ``busy_timeout=0``: it can never wait there. The driver
  begins no transaction by itself (``isolation_level = None``, SQLAlchemy's
  recipe for SQLite transaction control); each unit emits its own: writing
  units ``BEGIN IMMEDIATE`` (the write lock before the first statement, so no
  read is ever upgraded into a write), reading units ``BEGIN`` (one snapshot;
  WAL readers do not block the writer). Units of this process cannot overlap
  (a unit never awaits), so within the process nothing is ever locked. Only
  when another connection holds the lock (another process, a migration) does
  ``BEGIN`` fail at once; that unit, and every unit after it until the
  queue drains, then runs on a second connection in a worker thread, which
  waits for the lock with ``busy_timeout`` as before. Checkpoints (which
  fsync) run in that thread too, every :data:`CHECKPOINT_EVERY` writes,
  instead of inside a commit on the loop. After each unit the caller yields
  to the loop once, so a chain of database calls does not starve other tasks.
* **PostgreSQL** — :class:`EngineUnits`: a unit runs in one greenlet
  (``AsyncConnection.run_sync``) on a connection of the engine's pool. A
  connection, once opened, stays checked out between units (a checkout and
  checkin — the pool's bookkeeping, its reset and a new ``Connection`` —
  cost more CPU than a round trip to the server, and a connection handed back
  beyond the pool's size would be closed, and opened again at the next busy
  moment); at most as many units run at once as they may have connections
  (``db.session.PG_CONNECTIONS``, within the pool's size; the pool's
  overflow is left to ORM sessions), waiting here rather than in the pool,
  so a unit never waits for a connection that sits idle. The connections are
  in ``AUTOCOMMIT``: reading units and single statements run without
  ``BEGIN``/``COMMIT`` (at READ COMMITTED a transaction gives statements no
  common snapshot anyway; one statement is atomic by itself), every round
  trip counts; a writing unit of several statements says ``BEGIN`` and
  ``COMMIT`` itself, as ``asyncpg``'s simple queries (an exclusive unit's
  ``BEGIN`` takes the admission lock in the same round trip). Connections are not pinged: a unit whose connection
  turns out to be dead (a restarted server) runs again on another one, at
  worst a new one, unless it failed while committing (then it is unknown
  whether the commit happened, and the error is raised).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

from db.statements import ADMISSION_LOCK_KEY

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")
log = logging.getLogger(__name__)

#: What the repository writes its methods as: a function of a connection, run in one transaction.
Work = Callable[[Connection], T]

#: Writing units between two checkpoints of SQLite's WAL (each is a few pages; SQLite's own default is 1000 pages).
CHECKPOINT_EVERY = 500
_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


class Units(Protocol):
    """Runs units of work (see the module docstring)."""

    async def run(self, work: Work[T], *, write: bool = True, single: bool = False, exclusive: bool = False) -> T:
        """``work(connection)`` in one transaction; its value, or its exception after a rollback.

        ``write=False`` promises that ``work`` only reads; ``single=True`` that it runs one statement
        (atomic by itself, so PostgreSQL needs no ``BEGIN``/``COMMIT`` round trips around it).
        ``exclusive=True``: no other exclusive unit of any process runs meanwhile (the admission lock of
        ``db.limits``: PostgreSQL's advisory lock, taken with ``BEGIN`` in one round trip; SQLite's write
        lock, which every writing unit holds from its ``BEGIN IMMEDIATE``).
        """
        ...

    async def close(self) -> None:
        """Release the connections; no unit may run afterwards."""
        ...


# --- SQLite ------------------------------------------------------------------------------------


class _Busy(Exception):
    """Another connection holds the lock the unit needs (raised only where units must not wait)."""


def _is_busy(error: BaseException) -> bool:
    cause = getattr(error, "orig", error)
    code = getattr(cause, "sqlite_errorcode", None) if isinstance(cause, sqlite3.OperationalError) else None
    return code is not None and code & 0xFF in _BUSY  # extended codes too (SQLITE_BUSY_SNAPSHOT, ...)


def _run_unit(connection: Connection, work: Work[T], write: bool) -> T:
    """``work`` in one SQLite transaction on ``connection`` (whose driver begins none by itself).

    ``BEGIN`` goes to the ``sqlite3`` connection itself: SQLAlchemy has nothing to add to it. The first
    statement of ``work`` begins SQLAlchemy's record of the transaction; its commit or rollback is the driver's.
    """
    driver: Any = connection.connection.driver_connection  # sqlite3.Connection
    try:
        driver.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        value = work(connection)
        connection.commit()
        if driver.in_transaction:  # work ran no statement: SQLAlchemy had nothing to commit
            driver.commit()
    except BaseException:
        connection.rollback()
        if driver.in_transaction:
            driver.rollback()
        raise
    return value


class SQLiteUnits:
    """Units of one SQLite database: on the event loop, or in a thread while another connection holds a lock."""

    def __init__(self, url: str | URL, pragmas: tuple[str, ...]) -> None:
        self._url = make_url(url).set(drivername="sqlite+pysqlite")
        self._pragmas = pragmas
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voice2anime-sqlite")
        self._here: Connection | None = None  # used on the event loop only
        self._waiting: Connection | None = None  # used in the thread only
        self._queued = 0  # units sent to the thread and not finished
        self._writes = 0
        self._checkpoint: asyncio.Future[None] | None = None
        self._closed = False

    def _connect(self, *, here: bool) -> Connection:
        # One DB-API connection per engine (StaticPool). The loop's is opened in the thread (it may wait for a
        # lock while switching to WAL) and used on the loop from then on.
        engine = create_engine(self._url, poolclass=StaticPool, connect_args={"check_same_thread": False})
        pragmas = self._pragmas + (("PRAGMA wal_autocheckpoint=0", "PRAGMA busy_timeout=0") if here else ())

        @event.listens_for(engine, "connect")
        def _configure(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # the driver begins nothing by itself: each unit says BEGIN
            cursor = dbapi_connection.cursor()
            try:
                for pragma in pragmas:
                    cursor.execute(pragma)
            finally:
                cursor.close()

        return engine.connect()

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        context = contextvars.copy_context()  # the caller's context variables (logging, tracing) inside the unit
        return await asyncio.wrap_future(self._thread.submit(context.run, function, *args))

    async def run(self, work: Work[T], *, write: bool = True, single: bool = False, exclusive: bool = False) -> T:
        if self._closed:
            raise RuntimeError("the database is closed")
        if self._here is None:
            connection = await self._in_thread(lambda: self._connect(here=True))
            if self._here is None:
                self._here = connection
            else:  # another unit opened it meanwhile
                await self._in_thread(_dispose, connection)
        if not self._queued:
            try:
                value = self._here_unit(work, write)
            except _Busy:
                pass
            else:
                if write:
                    self._wrote()
                await asyncio.sleep(0)
                return value
        self._queued += 1
        try:
            return await self._in_thread(self._waiting_unit, work, write)
        finally:
            self._queued -= 1

    def _here_unit(self, work: Work[T], write: bool) -> T:
        assert self._here is not None
        try:
            return _run_unit(self._here, work, write)
        except Exception as error:
            if _is_busy(error):  # nothing was committed: the unit can run again elsewhere
                raise _Busy() from error
            raise

    def _waiting_unit(self, work: Work[T], write: bool) -> T:
        if self._waiting is None:
            self._waiting = self._connect(here=False)
        return _run_unit(self._waiting, work, write)

    def _wrote(self) -> None:
        self._writes += 1
        if self._writes % CHECKPOINT_EVERY == 0 and (self._checkpoint is None or self._checkpoint.done()):
            self._checkpoint = asyncio.ensure_future(self._in_thread(self._checkpoint_wal))

    def _checkpoint_wal(self) -> None:
        try:
            if self._waiting is None:
                self._waiting = self._connect(here=False)
            self._waiting.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            self._waiting.commit()  # ends SQLAlchemy's record of it (the driver had no transaction open)
        except Exception:  # the next one will do; SQLite checkpoints at the latest when the last connection closes
            log.warning("checkpointing the SQLite WAL failed", exc_info=True)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)
        here, self._here = self._here, None
        await self._in_thread(self._close, here)
        self._thread.shutdown(wait=False)

    def _close(self, here: Connection | None) -> None:
        waiting, self._waiting = self._waiting, None
        for connection in (here, waiting):
            if connection is not None:
                _dispose(connection)


def _dispose(connection: Connection) -> None:
    engine = connection.engine
    connection.close()
    engine.dispose()


# --- PostgreSQL --------------------------------------------------------------------------------


class EngineUnits:
    """Units on a pooled async engine (PostgreSQL with ``asyncpg``): one connection and at most one transaction each."""

    def __init__(self, engine: AsyncEngine, *, connections: int) -> None:
        """At most ``connections`` units at once (at most the pool's size), each connection kept open."""
        self._engine = engine
        self._at_once = connections
        self._slots: asyncio.Semaphore | None = None  # made on the loop, at the first unit
        self._idle: list[AsyncConnection] = []  # checked out of the pool, between units (touched on the loop only)

    async def run(self, work: Work[T], *, write: bool = True, single: bool = False, exclusive: bool = False) -> T:
        begin = write and (exclusive or not single)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._at_once)
        async with self._slots:
            for _ in range(self._at_once):
                stage = ["work"]
                try:
                    return await self._once(work, begin, exclusive, stage)
                except DBAPIError as error:
                    if not error.connection_invalidated or stage[0] == "commit":
                        raise
                # The connection was dead (a restarted server): it is discarded, nothing of the unit was committed.
                # Every kept connection may be: the next try gets another, at worst a new one.
            return await self._once(work, begin, exclusive, ["work"])

    async def _once(self, work: Work[T], begin: bool, exclusive: bool, stage: list[str]) -> T:
        connection = self._idle.pop() if self._idle else await self._connect()
        try:
            return await connection.run_sync(_in_unit, work, begin, exclusive, stage)
        finally:
            if connection.invalidated:
                await connection.close()  # back to the pool, which discards it
            else:
                self._idle.append(connection)

    async def _connect(self) -> AsyncConnection:
        """A connection of the pool, in ``AUTOCOMMIT`` until it is handed back (the pool resets it then).

        Set on the connection rather than on an engine: an engine given execution options listens to the start
        of every connection, and SQLAlchemy then runs its execution events at every statement.
        """
        connection = await self._engine.connect().start()
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        return connection

    async def close(self) -> None:
        """Give the kept connections back to the pool (the engine is disposed by its owner)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()


def _in_unit(connection: Connection, work: Work[T], begin: bool, exclusive: bool, stage: list[str]) -> T:
    """``work`` on an ``AUTOCOMMIT`` connection: in a transaction it begins itself, or statement by statement.

    ``exclusive``: the admission lock is taken with ``BEGIN``, in the same round trip. ``stage[0]`` becomes
    ``"commit"`` once ``COMMIT`` was sent (a failure from then on may have committed).
    """
    adapted: Any = connection.connection.dbapi_connection  # SQLAlchemy's adapter of the asyncpg connection
    driver: Any = adapted.driver_connection  # asyncpg's: is a transaction open on the server?
    try:
        if not begin:  # a read, or one statement: atomic by itself
            return work(connection)
        _control(connection, adapted, driver, _BEGIN_LOCKED if exclusive else "BEGIN")
        try:
            value = work(connection)
        except BaseException:
            _roll_back(connection, driver)
            raise
        stage[0] = "commit"
        _control(connection, adapted, driver, "COMMIT")
        return value
    finally:
        if connection.in_transaction():
            connection.rollback()  # ends SQLAlchemy's record of the unit (AUTOCOMMIT: nothing reaches the server)
        if not connection.invalidated and (driver.is_closed() or driver.is_in_transaction()):
            connection.invalidate()  # never keep, or hand back, a connection in a transaction


#: An exclusive unit's start: its transaction and the admission lock (``db.limits``) in one round trip.
_BEGIN_LOCKED = f"BEGIN; SELECT pg_advisory_xact_lock({ADMISSION_LOCK_KEY})"


def _control(connection: Connection, adapted: Any, driver: Any, command: str) -> None:
    """``BEGIN`` (with the lock) or ``COMMIT``, sent by ``asyncpg`` itself as a simple query: one round trip.

    Through SQLAlchemy's ``AdaptedConnection.run_async`` (its public way to the driver's coroutines): a
    statement through SQLAlchemy is a prepared one, which holds one command, and costs a cursor and a
    result; these commands take no parameters and return nothing. A failure is raised as SQLAlchemy would
    (``DBAPIError``); when the connection is gone it is invalidated first (``connection_invalidated``),
    so that a unit that failed to begin runs again on another connection (``EngineUnits.run``).
    """
    try:
        adapted.run_async(lambda pg: pg.execute(command))
    except Exception as error:
        lost = bool(driver.is_closed())
        if lost:
            connection.invalidate(error)
        raise DBAPIError(command, None, error, connection_invalidated=lost) from error


def _roll_back(connection: Connection, driver: Any) -> None:
    """End the unit's failed transaction; if that fails too, the connection is invalidated afterwards."""
    if driver.is_closed() or not driver.is_in_transaction():
        return
    try:
        connection.exec_driver_sql("ROLLBACK")
    except Exception:
        log.debug("rolling back a failed unit failed: its connection is discarded", exc_info=True)
