"""Request ids: honoured when well-formed, generated otherwise, on every response and log line."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.conftest import seed_world
from tests.gateway_support import access_lines, assert_envelope, captured_logs, served

GENERATED = re.compile(r"^[0-9a-f]{32}$")


def _boom() -> None:
    raise RuntimeError("kaboom in a handler")


@pytest.fixture
def gw(tmp_path, database_url):
    with served(
        tmp_path,
        database_url,
        rate_limit_enabled=True,
        rate_limit_ip="1000/minute",
        rate_limit_user="1000/minute",
        max_body_bytes=2048,
    ) as (container, app, client):
        app.api.add_api_route("/api/v1/test-boom", _boom, methods=["GET"])
        yield container, app, client, seed_world(container)


def test_well_formed_id_is_honoured(gw):
    _, _, client, _ = gw
    for incoming in (
        "abc-123",
        "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        "trace:span.7_x",
        "a" * 128,
    ):
        response = client.get("/healthz", headers={"X-Request-ID": incoming})
        assert response.headers["x-request-id"] == incoming
        assert response.json()["requestId"] == incoming


def test_missing_id_is_generated_and_unique(gw):
    _, _, client, _ = gw
    ids = {client.get("/healthz").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5
    assert all(GENERATED.match(i) for i in ids)


@pytest.mark.parametrize(
    "incoming", ["", "a" * 129, "has space", "<script>", 'quote"d', "semi;colon", "é"]
)
def test_malformed_id_is_replaced_not_echoed(gw, incoming):
    _, _, client, _ = gw
    response = client.get("/healthz", headers={"X-Request-ID": incoming.encode("utf-8")})
    returned = response.headers["x-request-id"]
    assert returned != incoming and GENERATED.match(returned)
    assert response.json()["requestId"] == returned


def test_id_is_on_every_kind_of_response(gw):
    container, _, client, world = gw
    admin = world["admin"].headers
    cases = [
        ("GET", "/healthz", {}, None, 200, None),
        ("GET", "/api/v1/projects", admin, None, 200, None),
        ("POST", "/api/v1/projects", admin, {"name": "RID", "framework": "SOC 2"}, 201, None),
        ("POST", "/api/v1/projects", admin, {"name": ""}, 400, "validation_error"),
        ("GET", "/api/v1/projects", {}, None, 401, "unauthenticated"),
        (
            "GET",
            "/api/v1/projects",
            {"Authorization": "Bearer forged.token.here"},
            None,
            401,
            "invalid_token",
        ),
        (
            "DELETE",
            f"/api/v1/projects/{world.project_a}",
            world["viewer"].headers,
            None,
            403,
            "forbidden",
        ),
        ("GET", f"/api/v1/projects/{world.project_c}", admin, None, 404, "not_found"),
        ("GET", "/no/such/route", {}, None, 404, "not_found"),
        ("GET", "/api/v1/no-such-route", admin, None, 404, "not_found"),
        ("PUT", "/api/v1/me", admin, None, 405, "method_not_allowed"),
        (
            "POST",
            "/api/v1/projects",
            admin,
            {"name": "x" * 4000, "framework": "y"},
            413,
            "payload_too_large",
        ),
        ("GET", "/api/v1/test-boom", admin, None, 500, "internal_error"),
    ]
    for method, path, headers, body, status, code in cases:
        incoming = f"case-{uuid.uuid4().hex[:12]}"
        with captured_logs():  # keeps the 500's traceback out of the console renderer
            response = client.request(
                method, path, headers={**headers, "X-Request-ID": incoming}, json=body
            )
        assert response.headers["x-request-id"] == incoming, (method, path)
        assert_envelope(response, status=status, code=code)


def test_id_is_on_429(tmp_path, database_url):
    with served(tmp_path, database_url, rate_limit_enabled=True, rate_limit_ip="2/minute") as (
        _,
        _,
        client,
    ):
        statuses = [client.get("/api/v1/me", headers={"X-Request-ID": f"r-{i}"}) for i in range(3)]
    assert [r.status_code for r in statuses] == [401, 401, 429]
    assert statuses[2].headers["x-request-id"] == "r-2"
    assert_envelope(statuses[2], status=429, code="rate_limited")


def test_log_line_carries_request_fields(gw):
    _, _, client, world = gw
    viewer = world["viewer"]
    with captured_logs() as entries:
        client.get(
            "/api/v1/projects?limit=5", headers={**viewer.headers, "X-Request-ID": "log-check-1"}
        )
        client.get("/api/v1/projects", headers={"X-Request-ID": "log-check-2"})
    lines = {line["request_id"]: line for line in access_lines(entries)}
    first = lines["log-check-1"]
    assert (
        first["method"] == "GET" and first["path"] == "/api/v1/projects" and first["status"] == 200
    )
    assert first["user_id"] == str(viewer.user_id)
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0
    anonymous = lines["log-check-2"]
    assert anonymous["status"] == 401 and anonymous["user_id"] is None


def test_unexpected_exception_is_logged_once_with_request_id(gw):
    _, _, client, world = gw
    with captured_logs() as entries:
        response = client.get(
            "/api/v1/test-boom", headers={**world["admin"].headers, "X-Request-ID": "boom-1"}
        )
    assert_envelope(response, status=500, code="internal_error")
    assert "kaboom" not in response.text  # internals stay in the log
    errors = [e for e in entries if e.get("event") == "unhandled_error"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == "boom-1" and "kaboom" in errors[0]["error"]
    assert errors[0]["log_level"] == "error"
    (access,) = [e for e in access_lines(entries) if e["request_id"] == "boom-1"]
    assert access["status"] == 500
