"""Use cases of the events API: read an organization's trail, and say which consumers have
handled an event (optionally waiting, bounded, until some have)."""

from __future__ import annotations

import builtins
import datetime as dt
import time
import uuid
from collections.abc import Mapping
from typing import Any

from studio.db.engine import Database
from studio.errors import AppError, forbidden, not_found
from studio.events.consumers import Consumer, matches
from studio.events.dispatcher import delivery_rows
from studio.events.envelope import StoredEvent, iso_utc
from studio.events.store import EventStore
from studio.permissions import allowed
from studio.principal import Principal

MAX_WAIT_SECONDS = 30.0
# The consumers commit from other threads or processes; nothing here is told when, so a
# wait re-reads their acknowledgments at this interval until its deadline.
WAIT_POLL_SECONDS = 0.05


def _organization(principal: Principal) -> str | None:
    """The organization the caller may read events of (None: every organization)."""
    if not allowed(principal.role, "events.read"):
        raise forbidden("events.read")
    return None if principal.is_super_admin else str(principal.organization_id)


class EventService:
    def __init__(self, db: Database, store: EventStore, consumers: Mapping[str, Consumer]):
        self.db = db
        self.store = store
        self.consumers = consumers

    def list(self, principal: Principal, *, after: int, limit: int, types: list[str] | None,
             stream: str | None, actor: str | None, since: dt.datetime | None,
             until: dt.datetime | None) -> tuple[list[dict[str, Any]], str | None]:
        """Events in position order, filtered; the cursor is the last position of the page."""
        org = _organization(principal)
        with self.db.read() as conn:
            items = self.store.read(conn, after=after, limit=limit + 1, types=types, stream=stream,
                                    actor=actor, organization=org, since=since, until=until)
        more = len(items) > limit
        items = items[:limit]
        return [e.to_wire() for e in items], str(items[-1].position) if more else None

    # `builtins.list`: in this class body `list` names the method above.
    def delivery(self, principal: Principal, event_id: uuid.UUID, *, wait_for: builtins.list[str],
                 timeout: float) -> dict[str, Any]:
        """One event and the consumers that handled it, after waiting (at most `timeout`
        seconds) for those named in `wait_for`."""
        org = _organization(principal)
        unknown = [n for n in wait_for if n not in self.consumers]
        if unknown:
            raise AppError("not_found", f"unknown consumer(s): {', '.join(unknown)}",
                           details=[{"field": "wait_for", "message": f"unknown consumer {n!r}"}
                                    for n in unknown])
        with self.db.read() as conn:
            event = self.store.get(conn, event_id)
        if event is None or (org is not None and event.organization != org):
            raise not_found("event")
        not_subscribed = [n for n in wait_for if not matches(self.consumers[n].subscriptions, event.type)]
        if not_subscribed:
            raise AppError("invalid_parameter", f"not subscribed to {event.type}: {', '.join(not_subscribed)}",
                           details=[{"field": "wait_for", "message": f"{n!r} does not consume {event.type}"}
                                    for n in not_subscribed])
        deadline = time.monotonic() + min(timeout, MAX_WAIT_SECONDS)
        while True:
            status = self._status(event)
            handled = {a["consumer"] for a in status["handledBy"]}
            if all(n in handled for n in wait_for) or time.monotonic() >= deadline:
                break
            time.sleep(WAIT_POLL_SECONDS)
        return {"event": event.to_wire(), **status, "waitedFor": wait_for,
                "complete": all(n in handled for n in wait_for)}

    def _status(self, event: StoredEvent) -> dict[str, Any]:
        with self.db.read() as conn:
            acks, letters, checkpoints = delivery_rows(conn, event.id)
        handled = {a.consumer for a in acks}
        failing = {r.consumer for r in letters}
        pending = [name for name, consumer in self.consumers.items()
                   if matches(consumer.subscriptions, event.type) and name not in handled
                   and name not in failing and checkpoints.get(name, 0) < event.position]
        return {
            "handledBy": [{"consumer": a.consumer, "handledAt": iso_utc(a.handled_at)} for a in acks],
            "pending": pending,
            "failed": [{"consumer": r.consumer, "status": r.status, "attempts": r.attempts,
                        "error": r.last_error} for r in letters],
        }
