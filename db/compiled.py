"""Statements compiled once by SQLAlchemy, then executed straight on the driver.

SQLAlchemy's execution of a statement whose compiled form is cached still
costs far more than the database's own work on these one-row statements: an
execution context, parameter and result objects and event dispatch, and on
``asyncpg`` a greenlet switch and an adapter cursor per statement (~60-100 µs
here, against 2-15 µs for a SQLite statement itself). For a statement
registered with :func:`prebuilt` (``db.statements`` registers those the
conversation runs for every event) the executors below ask SQLAlchemy once
per set of parameter names for what it would do — the SQL text, the order of
the parameters and their bind processors (``UTCDateTime``, ``JSON``, ...),
the result columns with their result processors — and from then on only do
that: process the parameters, run the SQL on the driver, process the rows.
What reaches the database and what comes back are the values SQLAlchemy would
produce; errors are wrapped in SQLAlchemy's exception classes
(``IntegrityError``, ...), and on PostgreSQL a lost connection is invalidated
(``connection_invalidated``) as SQLAlchemy would.

* :class:`SQLiteStatements` runs other statements through SQLAlchemy on the
  same connection (the transaction is the connection's own either way).
* :class:`AsyncpgStatements` runs statements on the ``asyncpg`` connection,
  in the transaction the unit opened there; a statement that is not prebuilt
  is compiled for the call. One that only SQLAlchemy can run (an ``IN`` list
  of parameters, a ``text()``) goes through SQLAlchemy in reading units, and is refused in a
  transaction (SQLAlchemy would open its own).

Statements run here do not fire SQLAlchemy's cursor events
(``before_cursor_execute``); ``sqlite3``'s trace callback sees SQLite's.
"""

from __future__ import annotations

import re
import sqlite3
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.util import await_only

S = TypeVar("S")

#: ``id()`` of every registered statement -> the statement (kept alive, so an id is never reused).
_PREBUILT: dict[int, Any] = {}


def prebuilt(statement: S) -> S:
    """Register ``statement`` (built once, kept for the life of the process) for compiled execution; returns it."""
    _PREBUILT[id(statement)] = statement
    return statement


class Plan:
    """What executing one statement with one set of parameter names amounts to."""

    __slots__ = ("_dialect", "_types", "processors", "row", "slots", "sql")

    def __init__(
        self, sql: str, slots: tuple[tuple[str | None, Any], ...], row: type | None, types: tuple[Any, ...], dialect: Any
    ):
        self.sql = sql
        #: Per positional parameter: (parameter name, bind processor), or (None, the fixed value, already processed).
        self.slots = slots
        #: The row type (None when the statement returns no rows).
        self.row = row
        self._types = types
        self._dialect = dialect
        #: (column index, result processor) for the result columns that have one; None until :meth:`know` was called.
        self.processors: tuple[tuple[int, Callable[[Any], Any]], ...] | None = None if types else ()

    def know(self, column_types: list[Any] | None) -> None:
        """Settle the result processors, given the driver's type of each result column (None: the driver has none)."""
        codes = column_types or [None] * len(self._types)
        found = (
            (i, type_._cached_result_processor(self._dialect, code))
            for i, (type_, code) in enumerate(zip(self._types, codes, strict=True))
        )
        self.processors = tuple((i, processor) for i, processor in found if processor is not None)

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        """The positional parameters for the driver."""
        values = []
        for name, how in self.slots:
            if name is None:
                values.append(how)
            else:
                value = parameters[name]
                values.append(how(value) if how is not None else value)
        return values

    def rows(self, data: Any) -> list[Any]:
        """The driver's rows as SQLAlchemy would return them (processed values, attribute access)."""
        assert self.row is not None and self.processors is not None
        make, processors, rows = self.row._make, self.processors, []  # type: ignore[attr-defined]  # row: a namedtuple class
        for found in data:
            values = list(found)
            for i, processor in processors:
                values[i] = processor(values[i])
            rows.append(make(values))
        return rows


def plan(statement: Any, names: frozenset[str], dialect: Any) -> Plan | None:
    """How to run ``statement`` with parameters ``names`` on the driver, or None when only SQLAlchemy can.

    Only SQLAlchemy can run a ``text()`` statement: its result columns are known once it ran, not when compiled.
    """
    if isinstance(statement, TextClause):
        return None
    compiled = statement.compile(dialect=dialect, column_keys=sorted(names))
    if (
        compiled.positiontup is None
        or compiled.post_compile_params  # IN lists, expanded per call
        or compiled.literal_execute_params
        or compiled.insert_prefetch  # Python-side column defaults
        or compiled.update_prefetch
        or compiled.escaped_bind_names
    ):
        return None
    processors = compiled._bind_processors
    slots: list[tuple[str | None, Any]] = []
    for name in compiled.positiontup:
        bind = compiled.binds[name]
        processor = processors.get(name)
        if bind.key in names:
            slots.append((bind.key, processor))
        elif name in names:
            slots.append((name, processor))
        elif bind.required or bind.callable is not None:
            return None  # missing: SQLAlchemy says so
        else:
            slots.append((None, processor(bind.value) if processor is not None else bind.value))
    row: type | None = None
    types: tuple[Any, ...] = ()
    if compiled._result_columns:
        columns = compiled._result_columns
        # The fields are known only at run time, which mypy's namedtuple support does not model.
        row = namedtuple("Row", [column[0] for column in columns], rename=True)  # type: ignore[misc, no-redef]
        types = tuple(column[3] for column in columns)
    return Plan(compiled.string, tuple(slots), row, types, dialect)


class Rows:
    """The result of a compiled statement: what the repository reads of a ``CursorResult``."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when one or none was required")
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        row = self.one_or_none()
        if row is None:
            raise NoResultFound("No row was found when one was required")
        return row

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]


class Plans:
    """Plans of prebuilt statements, per set of parameter names (one dialect)."""

    def __init__(self) -> None:
        self._plans: dict[tuple[int, frozenset[str]], Plan | None] = {}

    def of(self, statement: Any, parameters: Mapping[str, Any], dialect: Any) -> tuple[bool, Plan | None]:
        """(is the statement prebuilt, its plan or None)."""
        if id(statement) not in _PREBUILT:
            return False, plan(statement, frozenset(parameters), dialect)
        key = (id(statement), frozenset(parameters))
        try:
            return True, self._plans[key]
        except KeyError:
            found = self._plans[key] = plan(statement, key[1], dialect)
            return True, found


class SQLiteStatements:
    """What a SQLite unit executes with: ``execute(statement, parameters)``, on the cursor for prebuilt statements."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]  # None only once closed
        self._plans = Plans()

    def execute(self, statement: Any, parameters: Mapping[str, Any] | None = None) -> Any:
        parameters = parameters or {}
        if id(statement) not in _PREBUILT:
            return self.connection.execute(statement, parameters)
        _, compiled = self._plans.of(statement, parameters, self.connection.dialect)
        if compiled is None:
            return self.connection.execute(statement, parameters)
        arguments = compiled.arguments(parameters)
        if compiled.processors is None:
            compiled.know(None)  # pysqlite reports no column types
        cursor = self._cursor
        try:
            cursor.execute(compiled.sql, arguments)
            data = cursor.fetchall() if compiled.row is not None else ()
        except sqlite3.Error as error:
            raise DBAPIError.instance(compiled.sql, arguments, error, sqlite3.Error) from error
        return Rows(compiled.rows(data) if compiled.row is not None else [], cursor.rowcount)


_STATUS_COUNT = re.compile(r"(?:SELECT|UPDATE|DELETE|INSERT \d+) (\d+)")


class AsyncpgStatements:
    """What a PostgreSQL unit executes with: every statement on the ``asyncpg`` connection (inside ``run_sync``)."""

    def __init__(self, connection: Connection, plans: Plans) -> None:
        self.connection = connection
        self.driver: Any = connection.connection.driver_connection  # asyncpg.Connection
        self._plans = plans
        #: A transaction was opened on the driver (``BEGIN``): every statement must run there.
        self.in_transaction = False

    def execute(self, statement: Any, parameters: Mapping[str, Any] | None = None) -> Any:
        parameters = parameters or {}
        dialect = self.connection.dialect
        _, compiled = self._plans.of(statement, parameters, dialect)
        if compiled is None:
            if self.in_transaction:  # SQLAlchemy would open a transaction of its own
                raise NotImplementedError(f"a statement that needs SQLAlchemy's execution in a writing unit: {statement}")
            return self.connection.execute(statement, parameters)  # outside a transaction (its own ends with the unit)
        arguments = compiled.arguments(parameters)
        try:
            if compiled.processors is None:  # asyncpg's result types decide some processors (numbers)
                prepared = await_only(self.driver.prepare(compiled.sql))
                compiled.know([attribute.type.oid for attribute in prepared.get_attributes()])
            if compiled.row is not None:
                data = await_only(self.driver.fetch(compiled.sql, *arguments))
                return Rows(compiled.rows(data), len(data))
            status = await_only(self.driver.execute(compiled.sql, *arguments))
        except Exception as error:
            self._raise(error, compiled.sql, arguments)
        found = _STATUS_COUNT.match(status or "")
        return Rows([], int(found.group(1)) if found else -1)

    def run(self, sql: str) -> None:
        """A statement without parameters or rows (``BEGIN``, ``COMMIT``, ``ROLLBACK``)."""
        try:
            await_only(self.driver.execute(sql))
        except Exception as error:
            self._raise(error, sql, [])

    def _raise(self, error: Exception, sql: str, arguments: list[Any]) -> None:
        """Raise ``error`` as SQLAlchemy would: its DB-API class, wrapped; a dead connection invalidated."""
        dialect = self.connection.dialect
        adapted: Any = self.connection.connection.dbapi_connection
        try:
            adapted._handle_exception(error)  # the adapter's DB-API translation of asyncpg's exceptions
        except Exception as translated:
            dbapi_error: Exception = translated
        else:  # pragma: no cover - the adapter always raises
            dbapi_error = error
        disconnect = isinstance(dbapi_error, dialect.loaded_dbapi.Error) and dialect.is_disconnect(dbapi_error, adapted, None)
        if disconnect:
            self.connection.invalidate(dbapi_error)
        raise DBAPIError.instance(
            sql, arguments, dbapi_error, dialect.loaded_dbapi.Error, connection_invalidated=disconnect, dialect=dialect
        ) from error
