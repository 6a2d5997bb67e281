"""The repository base: create, find by id, find all (filter, order, keyset page), update,
delete, count. Every query of the domains lives in a repository."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from sqlalchemy import (
    ColumnElement,
    Date,
    Float,
    Integer,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy import Uuid as UuidType
from sqlalchemy.engine import Connection, Dialect, RowMapping

from studio.compiled import CompiledSelect, result_processor
from studio.errors import AppError
from studio.wire import camel, wire_value


@dataclass(slots=True)
class Page:
    items: list[RowMapping]
    next_cursor: str | None


def _encode_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"t": value.astimezone(dt.UTC).isoformat()}
    if isinstance(value, dt.date):
        return {"d": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"u": str(value)}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if "t" in value:
            return dt.datetime.fromisoformat(value["t"])
        if "d" in value:
            return dt.date.fromisoformat(value["d"])
        if "u" in value:
            return uuid.UUID(value["u"])
    return value


def encode_cursor(sort: str, desc: bool, value: Any, row_id: uuid.UUID) -> str:
    raw = orjson.dumps([sort, desc, _encode_value(value), str(row_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _python_type(column: Any) -> type | None:
    try:
        return column.type.python_type
    except NotImplementedError:
        return None


def _check_type(value: Any, expected: type | None) -> None:
    # A cursor comes from the client: a value of the wrong type would reach the database
    # driver (or a column type's bind hook) and fail there as a 500.
    if expected is None or expected is object:
        return
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return
    if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
        raise ValueError(f"cursor value is not a {expected.__name__}")
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        raise ValueError("cursor timestamp has no time zone")
    if expected is dt.date and isinstance(value, dt.datetime):
        raise ValueError("cursor value is not a date")


def decode_cursor(
    cursor: str, sort: str, desc: bool, expected: type | None = None
) -> tuple[Any, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        c_sort, c_desc, value, row_id = orjson.loads(raw)
        if c_sort != sort or c_desc != desc:
            raise ValueError("cursor belongs to another ordering")
        if not isinstance(row_id, str):
            raise ValueError("cursor row id is not a string")
        value = _decode_value(value)
        _check_type(value, expected)
        return value, uuid.UUID(row_id)
    except (ValueError, TypeError, KeyError, AttributeError, orjson.JSONDecodeError) as exc:
        raise AppError("invalid_cursor", f"invalid cursor: {exc}") from exc


class Repository:
    """Table-backed repository with keyset pagination over (sort column, id)."""

    table: ClassVar[Table]
    sortable: ClassVar[frozenset[str]] = frozenset({"created_at"})

    def __init__(self, conn: Connection):
        self.conn = conn

    # -- writes ---------------------------------------------------------------
    def create(self, values: dict[str, Any]) -> RowMapping:
        self.conn.execute(insert(self.table).values(**values))
        row = self.get(values["id"])
        assert row is not None
        return row

    def update(
        self,
        row_id: uuid.UUID,
        values: dict[str, Any],
        *,
        expected_version: int | None = None,
        where: Sequence[ColumnElement[bool]] = (),
    ) -> RowMapping | None:
        """Apply `values`; with `expected_version`, only if the row is still at it."""
        cond = [self.table.c.id == row_id, *where]
        if "version" in self.table.c:
            if expected_version is not None:
                cond.append(self.table.c.version == expected_version)
            values = {**values, "version": self.table.c.version + 1}
        result = self.conn.execute(update(self.table).where(and_(*cond)).values(**values))
        if result.rowcount == 0:
            if expected_version is not None and self.get(row_id, where=where) is not None:
                raise AppError("version_conflict")
            return None
        return self.get(row_id)

    def delete(self, row_id: uuid.UUID, *, where: Sequence[ColumnElement[bool]] = ()) -> bool:
        result = self.conn.execute(delete(self.table).where(self.table.c.id == row_id, *where))
        return result.rowcount > 0

    # -- reads ----------------------------------------------------------------
    def get(
        self, row_id: uuid.UUID, *, where: Sequence[ColumnElement[bool]] = ()
    ) -> RowMapping | None:
        query = select(self.table).where(self.table.c.id == row_id, *where)
        return self.conn.execute(query).mappings().first()

    def count(self, *, where: Sequence[ColumnElement[bool]] = ()) -> int:
        query = select(func.count()).select_from(self.table).where(true(), *where)
        return int(self.conn.execute(query).scalar_one())

    def find_all(
        self,
        *,
        where: Sequence[ColumnElement[bool]] = (),
        equal: Mapping[str, Any] | None = None,
        sort: str = "created_at",
        desc: bool = False,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page:
        """One page in (sort, id) order; the cursor makes page N cost what page 1 costs.

        `equal` filters columns by value. A call with `equal` only (no `where`) reuses a
        statement built once per shape with bound parameters: list endpoints run on every
        request, and building a select() cost more than executing it.
        """
        equal = equal or {}
        params = self._page_params(equal, sort, desc, cursor, limit)
        if where:
            query = self._page_query(tuple(equal), sort, desc, bool(cursor), where)
        else:
            key = (self.table.name, tuple(sorted(equal)), sort, desc, bool(cursor))
            query = _PAGE_QUERIES.get(key)
            if query is None:
                query = _PAGE_QUERIES[key] = self._page_query(key[1], sort, desc, bool(cursor), ())
        rows = list(self.conn.execute(query, params).mappings())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = encode_cursor(sort, desc, last[sort], last["id"])
        return Page(rows, next_cursor)

    def page_request(
        self,
        fields: tuple[str, ...],
        *,
        equal: Mapping[str, Any] | None = None,
        sort: str = "created_at",
        desc: bool = False,
        cursor: str | None = None,
        limit: int = 50,
    ) -> WirePageRequest:
        """One page of `find_all(equal=...)` for a list endpoint that serves a page on
        every request, checked (sort column, cursor: 400 for either) but not read yet:
        `result(conn)` reads it and maps it to the wire (`to_wire(row, fields)` of each
        row), or another statement fetches its rows along with its own
        (`load_principal(..., along=page)`).

        The statement is compiled once per shape and dialect and run at the driver level;
        each value goes from what the driver returns to its wire form in one step (the
        general path turns it into a Python object first, then into text). The result is
        the same, value for value: tests/test_read_path.py compares both paths.
        """
        equal = equal or {}
        params = self._page_params(equal, sort, desc, cursor, limit)
        dialect = self.conn.dialect
        key = (dialect.name, self.table.name, fields, tuple(sorted(equal)), sort, desc, bool(cursor))
        page = _WIRE_PAGES.get(key)
        if page is None:
            page = _WIRE_PAGES[key] = WirePage.build(self, dialect, key, fields)
        return WirePageRequest(page, params, limit)

    def _page_params(self, equal: Mapping[str, Any], sort: str, desc: bool, cursor: str | None,
                     limit: int) -> dict[str, Any]:
        """The bound parameters of a page statement (`_page_query`); checks the sort column
        and decodes the cursor (400 for either)."""
        if sort not in self.sortable:
            raise AppError(
                "invalid_parameter",
                f"cannot sort by {sort!r}",
                details=[{"field": "sort", "message": f"one of {sorted(self.sortable)}"}],
            )
        params: dict[str, Any] = {f"eq_{name}": value for name, value in equal.items()}
        params["page_limit"] = limit + 1
        if cursor:
            params["after_value"], params["after_id"] = decode_cursor(
                cursor, sort, desc, _python_type(self.table.c[sort])
            )
        return params

    def _page_query(self, equal: tuple[str, ...], sort: str, desc: bool, after: bool,
                    where: Sequence[ColumnElement[bool]]) -> Select[Any]:
        col, id_col = self.table.c[sort], self.table.c.id
        cond = [*where, *(self.table.c[name] == bindparam(f"eq_{name}") for name in equal)]
        if after:
            value = bindparam("after_value", type_=col.type)
            last_id = bindparam("after_id", type_=id_col.type)
            if desc:
                cond.append(or_(col < value, and_(col == value, id_col < last_id)))
            else:
                cond.append(or_(col > value, and_(col == value, id_col > last_id)))
        order = (col.desc(), id_col.desc()) if desc else (col.asc(), id_col.asc())
        return (select(self.table).where(true(), *cond).order_by(*order)
                .limit(bindparam("page_limit", type_=Integer())))


# (table, equality columns, sort, desc, after a cursor) -> statement; a few dozen at most.
_PAGE_QUERIES: dict[tuple[str, tuple[str, ...], str, bool, bool], Select[Any]] = {}


def _raw_to_wire(column: Any, dialect: Dialect) -> Any:
    """The function from a column's value as the driver returns it to its wire form (None:
    sent as is), the same as the column type's result processing followed by wire_value."""
    from studio.db import UTCDateTime
    from studio.events.envelope import iso_utc

    col_type = column.type
    sqlite = dialect.name == "sqlite"
    if isinstance(col_type, UuidType):
        # SQLite keeps 32 hex digits; PostgreSQL's driver returns uuid.UUID.
        return (lambda v: str(uuid.UUID(hex=v))) if sqlite else str
    if isinstance(col_type, UTCDateTime):
        if sqlite:  # naive UTC text, as SQLAlchemy's DateTime writes it
            return lambda v: dt.datetime.fromisoformat(v).isoformat(timespec="microseconds") + "Z"
        return iso_utc
    if type(col_type) is Date:
        return None if sqlite else dt.date.isoformat  # SQLite keeps ISO text already
    if isinstance(col_type, Float):
        return float  # REAL on SQLite, double precision on PostgreSQL: a float either way
    process = result_processor(column.type, dialect)
    if process is None:
        # Text, integers and booleans arrive from the driver as they go on the wire.
        return None if _python_type(column) in (str, int, bool) else wire_value
    return lambda v: wire_value(process(v))


@dataclass(slots=True)
class WirePage:
    """One page statement (built and compiled once) and one wire converter per selected
    column."""

    key: tuple[Any, ...]  # (dialect, table, fields, equality columns, sort, desc, after a cursor)
    query: Select[Any]  # the selected columns: `fields`, then the sort column and id if missing
    select: CompiledSelect
    columns: list[tuple[str, Any]]
    sort_index: int
    id_index: int

    @classmethod
    def build(cls, repo: Repository, dialect: Dialect, key: tuple[Any, ...],
              fields: tuple[str, ...]) -> WirePage:
        table = repo.table
        _, _, _, equal, sort, desc, after = key
        selected = list(dict.fromkeys([*fields, sort, "id"]))
        query = repo._page_query(equal, sort, desc, after, ()).with_only_columns(
            *(table.c[name] for name in selected))
        columns = [(camel(name), _raw_to_wire(table.c[name], dialect)) for name in selected]
        return cls(key, query, CompiledSelect.build(query, dialect), columns[:len(fields)],
                   selected.index(sort), selected.index("id"))

    @property
    def sort(self) -> str:
        return self.key[4]

    @property
    def desc(self) -> bool:
        return self.key[5]

    def cursor_after(self, row: Any) -> str:
        """The cursor of the page after `row` (a driver row of this statement)."""
        value, row_id = row[self.sort_index], row[self.id_index]
        processors = self.select.processors
        if processors[self.sort_index] is not None:
            value = processors[self.sort_index](value)
        if processors[self.id_index] is not None:
            row_id = processors[self.id_index](row_id)
        return encode_cursor(self.sort, self.desc, value, row_id)


@dataclass(slots=True)
class WirePageRequest:
    """One page of a list, chosen and checked, with its bound parameters; `rows` holds
    the driver rows once a combined statement fetched them (see `load_principal`)."""

    page: WirePage
    params: dict[str, Any]
    limit: int
    rows: list[Any] | None = None

    def result(self, conn: Connection) -> tuple[list[dict[str, Any]], str | None]:
        """The page on the wire and the cursor of the next one (None on the last)."""
        rows = self.rows if self.rows is not None else self.page.select.fetchall(conn, self.params)
        page = self.page
        next_cursor = None
        if len(rows) > self.limit:
            rows = rows[:self.limit]
            next_cursor = page.cursor_after(rows[-1])
        # A row may end with the sort column and the id when `fields` lacks them (selected
        # for the cursor only): zip stops at the last field.
        pairs = page.columns
        return [{wire_key: value if convert is None or value is None else convert(value)
                 for (wire_key, convert), value in zip(pairs, row)} for row in rows], next_cursor


# (dialect, table, fields, equality columns, sort, desc, after a cursor) -> compiled page.
_WIRE_PAGES: dict[tuple[Any, ...], WirePage] = {}
