"""Request bodies over the limit answer 413 before they are read, or as soon as they exceed it."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from studio.errors import AppError
from studio.gateway.envelope import send_error


class BodyLimitMiddleware:
    """Caps request bodies at `max_bytes`; `overrides` maps path prefixes to other caps
    (uploads stream to storage and set their own, larger one). A `*` in a prefix stands
    for one path segment, e.g. "/api/v1/evidence/*/files"."""

    def __init__(self, app: ASGIApp, max_bytes: int, overrides: dict[str, int] | None = None):
        self.app = app
        self.max_bytes = max_bytes
        ordered = sorted((overrides or {}).items(), key=lambda kv: -len(kv[0]))
        self.overrides = [
            (re.compile("".join("[^/]+" if part == "*" else re.escape(part)
                                for part in re.split(r"(\*)", prefix))), limit)
            for prefix, limit in ordered
        ]

    def _limit_for(self, path: str) -> int:
        for pattern, limit in self.overrides:
            if pattern.match(path):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope["path"])
        too_large = AppError("payload_too_large", f"request body exceeds {limit} bytes")
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    await send_error(scope, send, too_large)
                    return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise too_large
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except AppError as exc:
            if exc is not too_large or started:
                raise
            await send_error(scope, send, too_large)
