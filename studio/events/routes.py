"""HTTP endpoints of the event store: query events, and which consumers handled one (acks)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import StringConstraints
from starlette.responses import Response

from studio.errors import AppError
from studio.events.service import MAX_WAIT_SECONDS
from studio.http.api import POSITION_CURSOR, CurrentPrincipal, DateTimeQuery, container, ok, page
from studio.validation import NO_NUL

EventType = Annotated[str, StringConstraints(max_length=100, pattern=NO_NUL)]

router = APIRouter(tags=["events"])



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
    since: Annotated[
        DateTimeQuery | None, Query(description="timestamp >= since (RFC 3339, with a time zone)")
    ] = None,
    until: Annotated[
        DateTimeQuery | None, Query(description="timestamp < until (RFC 3339, with a time zone)")
    ] = None,
    after: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="only positions greater than this")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[
        str | None, Query(pattern=POSITION_CURSOR, description="nextCursor of the previous page")
    ] = None,
) -> Response:
    """Events in position order, filtered; keyset pagination on the global position."""
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
    items, next_cursor = container(request).events.list(
        principal, after=after, limit=limit, types=type, stream=stream, actor=actor,
        since=since, until=until)
    return page(request, items, next_cursor)


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
    wanted = [n.strip() for n in (wait_for or "").split(",") if n.strip()]
    return ok(request, container(request).events.delivery(principal, event_id, wait_for=wanted,
                                                          timeout=timeout))
