"""Selects compiled once per dialect and run on the driver's cursor.

For the few statements that run on every request (the caller, a project, a list page),
SQLAlchemy's per-execution work (cache lookup, execution context, result metadata and
row objects) costs more than the query itself on SQLite and about as much as a round
trip on PostgreSQL. A `DriverQuery` keeps the statement as SQLAlchemy Core builds it
and the column types' bind and result processing exactly as SQLAlchemy defines them;
only the per-call machinery in between is skipped. tests/test_read_path.py checks that
both paths return the same values.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Select
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError


def result_processor(sa_type: Any, dialect: Dialect) -> Any:
    """What SQLAlchemy applies to a driver value of this type on this dialect (or None)."""
    try:
        return sa_type.dialect_impl(dialect).result_processor(dialect, None)
    except TypeError:
        # PostgreSQL's numeric processors want the column's type code; a float column
        # arrives as a Python float from the driver and needs none.
        if isinstance(sa_type, Float):
            return None
        raise


def driver_fetchall(conn: Connection, sql: str, params: Any) -> list[Any]:
    """Run one statement on the driver's own cursor, in `conn`'s transaction. Driver
    errors leave as SQLAlchemy's DBAPIError, and a lost connection is invalidated, as
    SQLAlchemy's own execute would do."""
    if not conn.in_transaction():
        # What SQLAlchemy's execute would do first: begin the connection's transaction, so
        # that statements of one Database.read() share a snapshot on SQLite (BEGIN DEFERRED,
        # see studio/db.py); a no-op round trip-wise on autocommit connections.
        conn.begin()
    dialect = conn.dialect
    raw = conn.connection.dbapi_connection
    # psycopg: one cursor per connection, kept with it (SQLAlchemy clears this dictionary
    # when the connection is replaced). Creating a cursor copies the connection's adapter
    # map, about 9 % of a request's CPU here; a statement is prepared on its first run.
    # sqlite3 cursors cost nothing to create: a fresh one per statement.
    reuse = dialect.driver == "psycopg"
    info = conn.connection.info
    cursor = info.get(_CURSOR) if reuse else None
    if cursor is None:
        cursor = raw.cursor()  # type: ignore[union-attr]
        if reuse:
            info[_CURSOR] = cursor
    try:
        if reuse:
            cursor.execute(sql, params, prepare=True)
        else:
            cursor.execute(sql, params)
        return cursor.fetchall()
    except dialect.loaded_dbapi.Error as exc:
        if info.pop(_CURSOR, None) is not None:
            with contextlib.suppress(Exception):  # a fresh cursor for the next statement
                cursor.close()
        lost = dialect.is_disconnect(exc, raw, cursor)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error,
                                  connection_invalidated=lost, dialect=dialect) from exc
    finally:
        if not reuse:
            cursor.close()


_CURSOR = "studio.driver_cursor"


@dataclass(slots=True)
class CompiledSelect:
    """One select for one dialect: its SQL text, how to bind its parameters, and the
    result columns with their types."""

    sql: str
    positional: tuple[str, ...] | None
    defaults: dict[str, Any]  # literal parameters the dialect added (SQLite's OFFSET 0)
    binds: dict[str, Any]
    keys: tuple[str, ...]
    types: tuple[Any, ...]
    processors: tuple[Any, ...]

    @classmethod
    def build(cls, query: Select[Any], dialect: Dialect) -> CompiledSelect:
        compiled = query.compile(dialect=dialect)
        columns = list(query.selected_columns)
        types = tuple(column.type for column in columns)
        return cls(
            sql=compiled.string,
            positional=tuple(compiled.positiontup) if compiled.positional else None,  # type: ignore[arg-type]
            defaults=dict(compiled.params),
            binds={name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                   for name, bind in compiled.binds.items()},
            keys=tuple(query.selected_columns.keys()),
            types=types,
            processors=tuple(result_processor(t, dialect) for t in types),
        )

    def parameters(self, params: dict[str, Any]) -> Any:
        bound = {name: (process(value) if (process := self.binds.get(name)) and value is not None else value)
                 for name, value in {**self.defaults, **params}.items()}
        if self.positional is None:
            return bound
        return tuple(bound[name] for name in self.positional)

    def fetchall(self, conn: Connection, params: dict[str, Any]) -> list[Any]:
        """Rows as the driver returns them (tuples of driver values)."""
        return driver_fetchall(conn, self.sql, self.parameters(params))

    def mappings(self, conn: Connection, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Rows as dicts of Python values, as `conn.execute(query).mappings()` gives them."""
        return [self.mapping(row) for row in self.fetchall(conn, params)]

    def mapping(self, row: Any, width: int | None = None) -> dict[str, Any]:
        """One driver row (its first `width` columns) as a dict of Python values."""
        keys, processors = (self.keys, self.processors) if width is None else \
            (self.keys[:width], self.processors[:width])
        return {key: value if process is None or value is None else process(value)
                for key, process, value in zip(keys, processors, row[:len(keys)], strict=True)}


class DriverQuery:
    """A select built once, compiled once per dialect, run on the driver's cursor."""

    def __init__(self, query: Select[Any]):
        self.query = query
        self._compiled: dict[str, CompiledSelect] = {}

    def compiled(self, dialect: Dialect) -> CompiledSelect:
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = CompiledSelect.build(self.query, dialect)
        return found

    def first(self, conn: Connection, params: dict[str, Any]) -> dict[str, Any] | None:
        rows = self.compiled(conn.dialect).mappings(conn, params)
        return rows[0] if rows else None
