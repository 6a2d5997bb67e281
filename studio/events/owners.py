"""Which organization each event stream belongs to.

An event belongs to the organization of the object it changes, whoever the actor is
(a super_admin acting in another organization, a consumer emitting a follow-up). Every
event names its object through its stream (`project:<id>`, `user:<id>`, `org:<id>`), so
the unit of work derives the organization from the stream when a service emits, and no
service passes it: it cannot be forgotten, nor taken from the caller by mistake.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping

import structlog
from sqlalchemy import Table, Uuid, bindparam, select
from sqlalchemy.engine import Connection

from studio.events.models import streams as streams_t

log = structlog.get_logger("studio.events")

# The organization of the object a stream names (the text after `kind:`), or None if there
# is no such object (yet). Reads the caller's transaction, so an object created in it counts.
OwnerRule = Callable[[Connection, str], object | None]

# Bounds the cache; a stream's organization never changes, so any entry stays true.
_CACHE_LIMIT = 100_000


class StreamOwners:
    """Resolves a stream to the organization that owns it.

    - A stream that already has events belongs to the organization recorded with its head
      (`event_streams.organization_id`, fixed by its first event): `project.deleted`
      emitted after the row is gone still lands in the project's organization.
    - A new stream: the rule of its kind reads the object's row.
    - Kinds given the rule None belong to no organization (installation-wide: the shared
      framework catalog); only a super_admin reads their trail.
    - A kind without a rule, or an object not found, also gets no organization, and a
      warning names it: a new kind of stream needs its line in the table.

    Answers are cached per process: the organization of a stream never changes.
    """

    def __init__(self, rules: Mapping[str, OwnerRule | None]):
        self.rules = dict(rules)
        self._known: dict[str, str | None] = {}

    def organization_of(self, conn: Connection, stream: str) -> str | None:
        try:
            return self._known[stream]
        except KeyError:
            pass
        kind, _, key = stream.partition(":")
        if kind in self.rules and self.rules[kind] is None:
            return None
        recorded = conn.execute(
            select(streams_t.c.organization_id).where(streams_t.c.stream == stream)
        ).first()
        if recorded is not None:
            organization: str | None = recorded.organization_id
        else:
            rule = self.rules.get(kind)
            found = rule(conn, key) if rule is not None and key else None
            organization = None if found is None else str(found)
        if organization is None:
            log.warning("event_stream_without_organization", stream=stream,
                        reason="object not found" if kind in self.rules else "no owner rule for its kind")
            if recorded is None and kind in self.rules:
                return None  # the object may be created later in this transaction: ask again
        if len(self._known) >= _CACHE_LIMIT:
            self._known.clear()
        self._known[stream] = organization
        return organization


def by_row(table: Table) -> OwnerRule:
    """The rule for streams named after a row of `table` (`kind:<id>`): its organization_id."""
    query = select(table.c.organization_id).where(table.c.id == bindparam("id", type_=Uuid()))

    def rule(conn: Connection, key: str) -> object | None:
        try:
            row_id = uuid.UUID(key)
        except ValueError:
            return None
        return conn.execute(query, {"id": row_id}).scalar()

    return rule


def itself(_conn: Connection, key: str) -> object | None:
    """The rule for an organization's own stream (`org:<id>`)."""
    try:
        return uuid.UUID(key)
    except ValueError:
        return None
