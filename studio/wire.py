"""Row-to-wire mapping: timestamps as ISO-8601 UTC strings, ids as strings, camelCase keys."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from studio.events.envelope import iso_utc


def wire_value(value: Any) -> Any:
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


def to_wire(row: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """Pick `fields` from a row mapping, camelCasing names and converting values."""
    out = {}
    for name in fields:
        key = _CAMEL_CACHE.get(name)
        if key is None:
            key = _CAMEL_CACHE[name] = camel(name)
        out[key] = wire_value(row[name])
    return out
