"""Records as services hand them out: a row's chosen columns under their API names
(camelCase), with ids, dates and times as JSON text.

The API's `*Read` schemas document these records, and the web pages render them; both
read the same dicts, so nothing is shaped twice.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import RowMapping

# The one timestamp form, shared with the events' canonical JSON.
from studio.events.envelope import iso_utc

# What a column's Python value becomes in JSON, by its exact type (the database drivers and
# SQLAlchemy's column types return these classes, never subclasses); anything else as is.
_TO_JSON: dict[type, Callable[[Any], Any]] = {
    dt.datetime: iso_utc, dt.date: dt.date.isoformat, uuid.UUID: str,
}


def json_value(value: Any) -> Any:
    """A column value as JSON: UUIDs, dates and times as text, everything else as is."""
    convert = _TO_JSON.get(type(value))
    return value if convert is None else convert(value)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@functools.cache
def _keys(fields: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((name, camel(name)) for name in fields)


def record(row: Mapping[str, Any] | RowMapping, fields: tuple[str, ...]) -> dict[str, Any]:
    """`fields` of `row`, under their camelCase names, as JSON values."""
    to_json = _TO_JSON
    out: dict[str, Any] = {}
    for name, key in _keys(fields):
        value = row[name]
        convert = to_json.get(type(value))
        out[key] = value if convert is None else convert(value)
    return out
