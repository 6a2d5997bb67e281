"""Records as services hand them out: a row's chosen columns under their API names
(camelCase), with ids, dates and times as JSON text.

The API's `*Read` schemas document these records, and the web pages render them; both
read the same dicts, so nothing is shaped twice.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

# The one timestamp form, shared with the events' canonical JSON.
from studio.events.envelope import iso_utc


def json_value(value: Any) -> Any:
    """A column value as JSON: UUIDs, dates and times as text, everything else as is."""
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


@functools.cache
def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def record(row: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """`fields` of `row`, under their camelCase names, as JSON values."""
    return {camel(name): json_value(row[name]) for name in fields}
