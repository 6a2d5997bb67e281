"""The repository base: create, find by id, find all (filter, order, keyset page), update,
delete, count. Every query of the domains lives in a repository."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from sqlalchemy import (
    ColumnElement,
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
from sqlalchemy.engine import Connection, RowMapping

from studio.errors import AppError


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


def _python_type(column: ColumnElement[Any]) -> type | None:
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
        `equal` filters columns by value, `where` adds any other condition."""
        equal = equal or {}
        params = self._page_params(equal, sort, desc, cursor, limit)
        if where:
            query = _build_page_query(self.table, tuple(equal), sort, desc, bool(cursor), where)
        else:
            # Lists run on every request: a page of `equal` filters is built once per shape
            # with bound parameters (building it cost more than running it; docs/benchmarks.md).
            query = _page_query(self.table, tuple(sorted(equal)), sort, desc, bool(cursor))
        rows = list(self.conn.execute(query, params).mappings().all())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = encode_cursor(sort, desc, last[sort], last["id"])
        return Page(rows, next_cursor)

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

@functools.cache
def _page_query(table: Table, equal: tuple[str, ...], sort: str, desc: bool, after: bool) -> Select[Any]:
    return _build_page_query(table, equal, sort, desc, after, ())


def _build_page_query(table: Table, equal: tuple[str, ...], sort: str, desc: bool, after: bool,
                      where: Sequence[ColumnElement[bool]]) -> Select[Any]:
    """Rows of `table` matching `equal` (bound as eq_<column>) and `where`, in (sort, id)
    order, after the cursor's row (after_value, after_id), at most page_limit of them."""
    col, id_col = table.c[sort], table.c.id
    cond = [*where, *(table.c[name] == bindparam(f"eq_{name}") for name in equal)]
    if after:
        value = bindparam("after_value", type_=col.type)
        last_id = bindparam("after_id", type_=id_col.type)
        if desc:
            cond.append(or_(col < value, and_(col == value, id_col < last_id)))
        else:
            cond.append(or_(col > value, and_(col == value, id_col > last_id)))
    order = (col.desc(), id_col.desc()) if desc else (col.asc(), id_col.asc())
    return (select(table).where(true(), *cond).order_by(*order)
            .limit(bindparam("page_limit", type_=Integer())))
