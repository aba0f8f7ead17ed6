"""Units of work: one transaction per call, run where the database is cheapest to reach.

A unit is a plain function ``work(connection) -> value`` over a synchronous
SQLAlchemy :class:`~sqlalchemy.engine.Connection`; :meth:`Units.run` runs it
in one transaction and hands back its value (or its exception, after a
rollback). The repository writes each of its methods as one unit, so a method
costs one transaction whatever number of statements it needs.

* **SQLite** — :class:`SQLiteUnits`. A statement on SQLite takes
  microseconds; what used to cost was getting to it: aiosqlite posts every
  driver call (execute, fetch, commit, cursor close, the pool's reset) to its
  thread and back, a thread wake-up and a GIL hand-over each, tens of them
  per event. Now a unit runs *on the event loop*, on one connection, with
  ``busy_timeout=0``: it can never wait there. Writing units start with
  ``BEGIN IMMEDIATE`` (the write lock before the first statement, so no read
  is ever upgraded into a write), reading units with ``BEGIN`` (one snapshot;
  WAL readers do not block the writer). Units of this process cannot overlap
  (a unit never awaits), so within the process nothing is ever locked. Only
  when another connection holds the lock (another process, a migration) does
  ``BEGIN`` fail at once; that unit, and every unit after it until the
  queue drains, then runs on a second connection in a worker thread, which
  waits for the lock with ``busy_timeout`` as before. Checkpoints (which
  fsync) run in that thread too, every :data:`CHECKPOINT_EVERY` writes,
  instead of inside a commit on the loop. After each unit the caller yields
  to the loop once, so a chain of database calls does not starve other tasks.
* **PostgreSQL** — :class:`EngineUnits`: a unit runs inside one greenlet
  (as ``run_sync`` does, without the extra greenlets of
  ``AsyncEngine.connect``) on a connection of the engine's pool, with the
  statements run on ``asyncpg`` itself (``db.compiled``). A connection,
  once opened, stays checked out between units (a checkout and checkin —
  the pool's bookkeeping, its reset and a new ``Connection`` — cost more CPU
  than a round trip to the server, and a connection handed back beyond the
  pool's size would be closed, and opened again at the next busy moment);
  at most as many units run at once as they may have connections
  (``db.session.PG_CONNECTIONS``, within the pool's size; the pool's
  overflow is left to ORM sessions), waiting here rather than in the pool,
  so a unit never waits for a connection that sits idle.
  Reading units and single statements run without ``BEGIN``/``COMMIT`` (at
  READ COMMITTED a transaction gives statements no common snapshot anyway;
  one statement is atomic by itself): every round trip counts. Connections
  are not pinged: a unit whose connection turns out to be dead (a restarted
  server) runs again on another one, at worst a new one, unless it failed
  while committing (then it is unknown whether the commit happened, and the
  error is raised).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool
from sqlalchemy.util import greenlet_spawn

from db.compiled import AsyncpgStatements, Plans, SQLiteStatements
from db.statements import BEGIN_EXCLUSIVE

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")
log = logging.getLogger(__name__)


class Executes(Protocol):
    """What a unit runs its statements with (``db.compiled``: SQLAlchemy-compiled statements on the driver)."""

    def execute(self, statement: Any, parameters: Mapping[str, Any] | None = None, /) -> Any: ...


Work = Callable[[Executes], T]

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
        ``db.limits``: PostgreSQL's advisory lock, taken with ``BEGIN`` in the same round trip; SQLite's
        write lock, which every writing unit holds from its ``BEGIN IMMEDIATE``).
        """
        ...

    async def close(self) -> None:
        """Release the connections; no unit may run afterwards."""
        ...


class _Busy(Exception):
    """Another connection holds the lock the unit needs (raised only where units must not wait)."""


def _is_busy(error: BaseException) -> bool:
    cause = getattr(error, "orig", error)
    code = getattr(cause, "sqlite_errorcode", None) if isinstance(cause, sqlite3.OperationalError) else None
    return code is not None and code & 0xFF in _BUSY  # extended codes too (SQLITE_BUSY_SNAPSHOT, ...)


def _run_unit(statements: SQLiteStatements, work: Work[T], write: bool) -> T:
    """``work`` in one SQLite transaction on ``statements``' connection (whose driver opens none by itself)."""
    connection = statements.connection
    raw: Any = connection.connection.dbapi_connection
    raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        value = work(statements)
    except BaseException:
        connection.rollback()
        if raw.in_transaction:
            raw.rollback()
        raise
    connection.commit()  # ends SQLAlchemy's view of the transaction (and ours, once it ran a statement)
    if raw.in_transaction:
        raw.commit()
    return value


class SQLiteUnits:
    """Units of one SQLite database: on the event loop, or in a thread while another connection holds a lock."""

    def __init__(self, url: str | URL, pragmas: tuple[str, ...]) -> None:
        self._url = make_url(url).set(drivername="sqlite+pysqlite")
        self._pragmas = pragmas
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voice2anime-sqlite")
        self._here: SQLiteStatements | None = None  # used on the event loop only
        self._waiting: SQLiteStatements | None = None  # used in the thread only
        self._queued = 0  # units sent to the thread and not finished
        self._writes = 0
        self._checkpoint: asyncio.Future[None] | None = None
        self._closed = False

    def _connect(self, *, here: bool) -> SQLiteStatements:
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

        return SQLiteStatements(engine.connect())

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
                await self._in_thread(_dispose, connection.connection)
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
            self._waiting.connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
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

    def _close(self, here: SQLiteStatements | None) -> None:
        waiting, self._waiting = self._waiting, None
        for statements in (here, waiting):
            if statements is not None:
                _dispose(statements.connection)


def _dispose(connection: Connection) -> None:
    engine = connection.engine
    connection.close()
    engine.dispose()


class EngineUnits:
    """Units on a pooled async engine (PostgreSQL with ``asyncpg``): one connection and at most one transaction each."""

    def __init__(self, engine: AsyncEngine, *, connections: int) -> None:
        """At most ``connections`` units at once (at most the pool's size), each connection kept open."""
        self._engine = engine
        self._plans = Plans()
        self._at_once = connections
        self._slots: asyncio.Semaphore | None = None  # made on the loop, at the first unit
        self._idle: list[Connection] = []  # checked out of the pool, between units (touched on the loop only)

    async def run(self, work: Work[T], *, write: bool = True, single: bool = False, exclusive: bool = False) -> T:
        begin = (BEGIN_EXCLUSIVE if exclusive else "BEGIN") if write and (exclusive or not single) else None
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._at_once)
        async with self._slots:
            for _ in range(self._at_once):
                stage = ["work"]
                try:
                    return await self._once(work, begin, stage)
                except DBAPIError as error:
                    if not error.connection_invalidated or stage[0] == "commit":
                        raise
                # The connection was dead (a restarted server): it is discarded, nothing of the unit was committed.
                # Every kept connection may be: the next try gets another, at worst a new one.
            return await self._once(work, begin, ["work"])

    async def _once(self, work: Work[T], begin: str | None, stage: list[str]) -> T:
        engine, plans, idle = self._engine.sync_engine, self._plans, self._idle

        def unit() -> T:  # in one greenlet: statements, and a checkout or checkin when needed (asyncpg awaited through it)
            connection = idle.pop() if idle else engine.connect()
            try:
                return _in_unit(AsyncpgStatements(connection, plans), work, begin, stage)
            finally:
                if connection.invalidated:
                    connection.close()  # back to the pool, which discards it
                else:
                    idle.append(connection)

        return await greenlet_spawn(unit)

    async def close(self) -> None:
        """Give the kept connections back to the pool (the engine is disposed by its owner)."""
        idle, self._idle = self._idle, []

        def give_back() -> None:
            for connection in idle:
                connection.close()

        if idle:
            await greenlet_spawn(give_back)


def _in_unit(statements: AsyncpgStatements, work: Work[T], begin: str | None, stage: list[str]) -> T:
    """``work`` on ``statements``' connection: in a transaction begun with ``begin``, or (None) statement by statement."""
    connection = statements.connection
    try:
        if begin is None:  # a read, or one statement: atomic by itself
            value = work(statements)
            if connection.in_transaction():  # SQLAlchemy ran a statement (and began)
                connection.commit()
            return value
        statements.run(begin)
        statements.in_transaction = True
        try:
            value = work(statements)
        except BaseException:
            if not statements.driver.is_closed() and statements.driver.is_in_transaction():
                statements.run("ROLLBACK")
            raise
        stage[0] = "commit"
        statements.run("COMMIT")
        return value
    finally:
        driver = statements.driver
        if not connection.invalidated and not driver.is_closed() and driver.is_in_transaction():
            connection.invalidate()  # never keep, or hand back, a connection in a transaction
