"""HTTP endpoints of the event store: query events, and which consumers handled one (acks)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import StringConstraints
from sqlalchemy import select
from starlette.responses import Response

from studio.errors import AppError, forbidden, not_found
from studio.events.consumers import matches
from studio.events.envelope import StoredEvent, iso_utc
from studio.events.models import consumer_checkpoints, event_acks, event_dead_letters
from studio.http.api import CurrentPrincipal, container, ok, page
from studio.permissions import allowed
from studio.principal import Principal
from studio.validation import NO_NUL

EventType = Annotated[str, StringConstraints(max_length=100, pattern=NO_NUL)]

router = APIRouter(tags=["events"])

MAX_WAIT_SECONDS = 30.0
WAIT_POLL_SECONDS = 0.05


def _authorize(principal: Principal) -> str | None:
    """The organization the caller may read events of (None: every organization)."""
    if not allowed(principal.role, "events.read"):
        raise forbidden("events.read")
    return None if principal.is_super_admin else str(principal.organization_id)


@router.get("/events")
def list_events(
    request: Request,
    principal: CurrentPrincipal,
    type: Annotated[
        list[EventType] | None, Query(max_length=100, description="exact type or 'prefix.*'; repeatable")
    ] = None,
    stream: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    actor: Annotated[
        str | None, Query(max_length=64, pattern=NO_NUL, description="user id in metadata.actor")
    ] = None,
    since: Annotated[dt.datetime | None, Query(description="timestamp >= since (ISO-8601)")] = None,
    until: Annotated[dt.datetime | None, Query(description="timestamp < until (ISO-8601)")] = None,
    after: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="only positions greater than this")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=20, description="nextCursor of the previous page")
    ] = None,
) -> Response:
    """Events in position order, filtered; keyset pagination on the global position."""
    org = _authorize(principal)
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise AppError(
                "invalid_parameter",
                f"{name} must carry a time zone",
                details=[{"field": name, "message": "timezone required"}],
            )
    if cursor is not None:
        if not cursor.isdigit():
            raise AppError("invalid_cursor")
        after = max(after, int(cursor))
    c = container(request)
    with c.db.read() as conn:
        items = c.store.read(
            conn,
            after=after,
            limit=limit + 1,
            types=type,
            stream=stream,
            actor=actor,
            organization=org,
            since=since,
            until=until,
        )
    more = len(items) > limit
    items = items[:limit]
    return page(request, [e.to_wire() for e in items], str(items[-1].position) if more else None)


@router.get("/events/{event_id}")
def get_event(
    request: Request,
    principal: CurrentPrincipal,
    event_id: uuid.UUID,
    wait_for: Annotated[
        str | None,
        Query(
            alias="wait_for",
            max_length=1000,
            description="comma-separated consumer names to wait for",
        ),
    ] = None,
    timeout: Annotated[
        float, Query(ge=0, le=MAX_WAIT_SECONDS, description="seconds to wait at most")
    ] = 5.0,
) -> Response:
    """One event and the consumers that have handled it; optionally wait (bounded) for some."""
    org = _authorize(principal)
    c = container(request)
    dispatcher = c.dispatcher
    known = dispatcher.consumers if dispatcher else {}
    wanted = [n.strip() for n in (wait_for or "").split(",") if n.strip()]
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise AppError(
            "not_found",
            f"unknown consumer(s): {', '.join(unknown)}",
            details=[{"field": "wait_for", "message": f"unknown consumer {n!r}"} for n in unknown],
        )
    with c.db.read() as conn:
        event = c.store.get(conn, event_id)
    if event is None or (org is not None and event.metadata.get("organization") != org):
        raise not_found("event")
    not_subscribed = [n for n in wanted if not matches(known[n].subscriptions, event.type)]
    if not_subscribed:
        raise AppError(
            "invalid_parameter",
            f"not subscribed to {event.type}: {', '.join(not_subscribed)}",
            details=[
                {"field": "wait_for", "message": f"{n!r} does not consume {event.type}"}
                for n in not_subscribed
            ],
        )
    deadline = time.monotonic() + timeout
    while True:
        status = _delivery(c, event, known)
        handled = {a["consumer"] for a in status["handledBy"]}
        if all(n in handled for n in wanted) or time.monotonic() >= deadline:
            break
        time.sleep(WAIT_POLL_SECONDS)
    status["waitedFor"] = wanted
    status["complete"] = all(n in handled for n in wanted)
    return ok(request, {"event": event.to_wire(), **status})


def _delivery(c, event: StoredEvent, known: dict) -> dict:
    with c.db.read() as conn:
        acks = conn.execute(
            select(event_acks.c.consumer, event_acks.c.handled_at)
            .where(event_acks.c.event_id == event.id)
            .order_by(event_acks.c.handled_at)
        ).all()
        letters = conn.execute(
            select(
                event_dead_letters.c.consumer,
                event_dead_letters.c.status,
                event_dead_letters.c.attempts,
                event_dead_letters.c.last_error,
            ).where(event_dead_letters.c.event_id == event.id)
        ).all()
        checkpoints = dict(
            conn.execute(
                select(consumer_checkpoints.c.consumer, consumer_checkpoints.c.position)
            ).all()
        )
    handled = {a.consumer for a in acks}
    failing = {r.consumer for r in letters}
    pending = [
        n
        for n, consumer in known.items()
        if matches(consumer.subscriptions, event.type)
        and n not in handled
        and n not in failing
        and checkpoints.get(n, 0) < event.position
    ]
    return {
        "handledBy": [{"consumer": a.consumer, "handledAt": iso_utc(a.handled_at)} for a in acks],
        "pending": pending,
        "failed": [
            {
                "consumer": r.consumer,
                "status": r.status,
                "attempts": r.attempts,
                "error": r.last_error,
            }
            for r in letters
        ],
    }
