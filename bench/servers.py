"""The two apps the API benchmark serves under the same uvicorn: the full Studio app, and
a bare Starlette app that reads the same evidence page with the raw driver (the ceiling).

Both are uvicorn factories configured by environment variables, so each runs in its own
server process exactly as `studio serve` would run the app.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from studio.db.repository import encode_cursor

COLUMNS = (
    "id", "organization_id", "project_id", "title", "description", "control_id", "status",
    "quality_score", "effective_date", "expires_at", "created_by", "created_at", "updated_at",
    "version",
)  # fmt: skip
WIRE_KEYS = tuple(
    name.split("_")[0] + "".join(p.title() for p in name.split("_")[1:]) for name in COLUMNS
)
PAGE_SQL = (
    f"SELECT {', '.join(COLUMNS)} FROM evidence WHERE project_id = {{p}} "
    "ORDER BY created_at DESC, id DESC LIMIT {n}"
)
UUID_COLUMNS = frozenset({"id", "organization_id", "project_id", "created_by"})
TIME_COLUMNS = frozenset({"created_at", "updated_at"})
DATE_COLUMNS = frozenset({"effective_date", "expires_at"})


def full_app() -> Any:
    """The Studio app, built the way `studio serve` builds it (settings from STUDIO_*)."""
    from studio.app import create_app
    from studio.bootstrap import bootstrap
    from studio.logging import configure_logging
    from studio.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(bootstrap(settings))


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sqlite_reader(path: str) -> Any:
    import sqlite3

    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    sql = PAGE_SQL.format(p="?", n="?")
    # SQLAlchemy keeps UUIDs as 32 hex characters and timestamps as naive UTC text here.
    convert: list[Any] = []
    for name in COLUMNS:
        if name in UUID_COLUMNS:
            convert.append(lambda v: None if v is None else str(uuid.UUID(hex=v)))
        elif name in TIME_COLUMNS:
            convert.append(lambda v: None if v is None else dt.datetime.fromisoformat(v).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ"))
        else:
            convert.append(None)

    def read(project: uuid.UUID, limit: int) -> list[dict[str, Any]]:
        rows = conn.execute(sql, (project.hex, limit)).fetchall()
        return [
            {key: (fn(value) if fn else value) for key, fn, value in zip(WIRE_KEYS, convert, row, strict=True)}
            for row in rows
        ]

    return read


def _postgres_reader(url: str) -> Any:
    import psycopg

    conn = psycopg.connect(url, autocommit=True)
    sql = PAGE_SQL.format(p="%s", n="%s")

    def wire(name: str, value: Any) -> Any:
        if value is None:
            return None
        if name in UUID_COLUMNS:
            return str(value)
        if name in TIME_COLUMNS:
            return _iso(value)
        if name in DATE_COLUMNS:
            return value.isoformat()
        return value

    def read(project: uuid.UUID, limit: int) -> list[dict[str, Any]]:
        rows = conn.execute(sql, (project, limit), prepare=True).fetchall()
        return [{key: wire(name, value) for key, name, value in zip(WIRE_KEYS, COLUMNS, row, strict=True)}
                for row in rows]

    return read


def bare_app() -> Any:
    """Starlette, one shared raw connection, no ORM, no gateway: the ceiling."""
    url = os.environ["STUDIO_DATABASE_URL"]
    if url.startswith("sqlite"):
        read = _sqlite_reader(url.removeprefix("sqlite:///"))
    else:
        read = _postgres_reader(url.replace("postgresql+psycopg://", "postgresql://"))

    async def evidence_page(request: Request) -> Response:
        project = uuid.UUID(request.path_params["project_id"])
        limit = int(request.query_params.get("limit", "50"))
        items = read(project, limit + 1)
        cursor = None
        if len(items) > limit:
            items = items[:limit]
            last = items[-1]
            cursor = encode_cursor("created_at", True,
                                   dt.datetime.fromisoformat(last["createdAt"]), uuid.UUID(last["id"]))
        return Response(orjson.dumps({"items": items, "nextCursor": cursor}),
                        media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(routes=[
        Route("/api/v1/projects/{project_id}/evidence", evidence_page),
        Route("/healthz", healthz),
    ])
