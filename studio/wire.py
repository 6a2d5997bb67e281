"""Row-to-wire mapping: timestamps as ISO-8601 UTC strings, ids as strings, camelCase keys."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from studio.events.envelope import iso_utc


# Dispatch on the exact type (one dict lookup per value; None: sent as is), isinstance for
# anything else (subclasses).
_BY_TYPE: dict[type, Any] = {
    dt.datetime: iso_utc, dt.date: dt.date.isoformat, uuid.UUID: str,
    str: None, int: None, float: None, bool: None, type(None): None,
}
_MISSING = object()


def wire_value(value: Any) -> Any:
    convert = _BY_TYPE.get(type(value), _MISSING)
    if convert is None:
        return value
    if convert is not _MISSING:
        return convert(value)
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


_CAMEL_CACHE: dict[str, str] = {}


def _keys(fields: tuple[str, ...]) -> list[tuple[str, str]]:
    pairs = []
    for name in fields:
        key = _CAMEL_CACHE.get(name)
        if key is None:
            key = _CAMEL_CACHE[name] = camel(name)
        pairs.append((name, key))
    return pairs


_FIELD_KEYS: dict[tuple[str, ...], list[tuple[str, str]]] = {}


def to_wire(row: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """Pick `fields` from a row mapping, camelCasing names and converting values."""
    pairs = _FIELD_KEYS.get(fields)
    if pairs is None:
        pairs = _FIELD_KEYS[fields] = _keys(fields)
    by_type = _BY_TYPE
    out = {}
    for name, key in pairs:
        value = row[name]
        convert = by_type.get(type(value), _MISSING)
        if convert is None:
            out[key] = value
        elif convert is _MISSING:
            out[key] = wire_value(value)
        else:
            out[key] = convert(value)
    return out
