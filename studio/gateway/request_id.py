"""First layer: a request id for every request, in the response and in every log line."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_VALID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
log = structlog.get_logger("studio.access")


class RequestIdMiddleware:
    """Honours a well-formed X-Request-ID, generates one otherwise, and logs the request.

    A malformed incoming id (too long, odd characters) is replaced rather than echoed,
    so it can neither inject into logs nor break the envelope.
    """

    def __init__(self, app: ASGIApp, header: str = "x-request-id"):
        self.app = app
        self.header = header.lower().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v for k, v in scope["headers"] if k == self.header), b"").decode("latin-1")
        request_id = incoming if _VALID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        # Bound for this request's task only (each request runs in a task of its own, with
        # its own copy of the context) and reset on the way out.
        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        start = time.perf_counter()
        status = 500
        header_value = request_id.encode()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (self.header, header_value)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            auth = scope["state"].get("auth")
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - start) * 1000, 2),
                user_id=str(auth.user_id) if auth else None,
            )
            structlog.contextvars.reset_contextvars(**bound)
