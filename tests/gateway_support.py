"""Shared by the gateway tests: an app built with chosen settings, envelope and log checks."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog
from starlette.testclient import TestClient

from studio.app import create_app
from studio.bootstrap import Container, bootstrap
from tests.conftest import make_settings

ENVELOPE_KEYS = {"success", "data", "error", "timestamp", "requestId"}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
SECURITY_HEADERS = (
    "x-content-type-options", "x-frame-options", "referrer-policy", "content-security-policy",
    "cross-origin-opener-policy", "permissions-policy",
)  # fmt: skip


def _with_test_ip(app: Any) -> Any:
    """Let a test pick the client address per request (X-Test-Client-IP), on one event loop."""

    async def shim(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            ip = next((v for k, v in scope["headers"] if k == b"x-test-client-ip"), None)
            if ip is not None:
                scope = {**scope, "client": (ip.decode(), 40000)}
        await app(scope, receive, send)

    return shim


def ip(address: str) -> dict[str, str]:
    return {"X-Test-Client-IP": address}


@contextmanager
def served(
    tmp_path: Path, database_url: str, **overrides: Any
) -> Iterator[tuple[Container, Any, TestClient]]:
    """A container, its app and a client, built with `overrides` on the test settings."""
    container = bootstrap(make_settings(tmp_path, database_url, **overrides))
    app = create_app(container)
    try:
        with TestClient(_with_test_ip(app), raise_server_exceptions=False) as client:
            yield container, app, client
    finally:
        container.close()


def assert_envelope(response: Any, *, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is exactly the envelope, with this status and (for errors) this code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == ENVELOPE_KEYS, body
    assert TIMESTAMP.match(body["timestamp"]), body["timestamp"]
    stamp = dt.datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.UTC) - stamp).total_seconds()) < 60
    assert body["requestId"] and body["requestId"] == response.headers["x-request-id"]
    if status < 400:
        assert body["success"] is True and body["error"] is None, body
    else:
        assert body["success"] is False and body["data"] is None, body
        assert set(body["error"]) == {"code", "message", "details"}, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        if code is not None:
            assert body["error"]["code"] == code, body
    return body


def assert_security_headers(response: Any) -> None:
    for name in SECURITY_HEADERS:
        assert response.headers.get(name), f"{name} missing on {response.request.url}"
    assert response.headers["x-content-type-options"] == "nosniff"


@contextmanager
def captured_logs() -> Iterator[list[dict[str, Any]]]:
    """Every structlog event, with the context variables the gateway binds merged in."""
    capture = structlog.testing.LogCapture()
    previous = structlog.get_config()
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, capture],
        # Every level: an earlier configure_logging (a CLI test) may have set a filter.
        wrapper_class=structlog.make_filtering_bound_logger(0),
        cache_logger_on_first_use=False,
    )
    try:
        yield capture.entries
    finally:
        structlog.configure(**previous)


def access_lines(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e.get("event") == "request"]


@contextmanager
def redis_prefix(url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys (and only those) are deleted afterwards."""
    import uuid

    import redis

    prefix = f"studio-test-{uuid.uuid4().hex}"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(url)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*", count=500))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
