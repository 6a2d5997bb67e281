"""Every response is exactly the envelope, with security headers; health and readiness."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import seed_world
from tests.gateway_support import assert_envelope, assert_security_headers, captured_logs, served


def _boom() -> None:
    raise ZeroDivisionError("a bug")


@pytest.fixture
def gw(tmp_path, database_url):
    with served(tmp_path, database_url, max_body_bytes=4096) as (container, app, client):
        app.api.add_api_route("/api/v1/test-boom", _boom, methods=["GET"])
        app.api.add_api_route(
            "/api/v1/test-boom", _boom, methods=["POST"], operation_id="boom_post"
        )
        yield container, client, seed_world(container)


def test_each_status_is_an_envelope_with_security_headers(gw):
    _, client, world = gw
    admin = world["admin"].headers
    a = world.project_a
    client.post("/api/v1/projects", headers=admin, json={"name": "Taken", "framework": "SOC 2"})
    cases = [
        ("GET", "/healthz", {}, {}, 200, None),
        ("GET", "/api/v1/projects", admin, {}, 200, None),
        (
            "POST",
            "/api/v1/projects",
            admin,
            {"json": {"name": "New", "framework": "SOC 2"}},
            201,
            None,
        ),
        ("POST", "/api/v1/projects", admin, {"json": {"name": 3}}, 400, "validation_error"),
        (
            "POST",
            "/api/v1/projects",
            {**admin, "Content-Type": "application/json"},
            {"content": b'{"name": "x",'},
            400,
            "invalid_json",
        ),
        ("GET", "/api/v1/projects/42", admin, {}, 400, "invalid_parameter"),
        ("GET", "/api/v1/projects?cursor=%21%21", admin, {}, 400, "invalid_cursor"),
        ("GET", "/api/v1/projects", {}, {}, 401, "unauthenticated"),
        (
            "GET",
            "/api/v1/projects",
            {"Authorization": "Basic dXNlcjpwdw=="},
            {},
            401,
            "invalid_token",
        ),
        (
            "POST",
            "/api/v1/auth/login",
            {},
            {"json": {"email": "admin@one.example", "password": "wrong"}},
            401,
            "invalid_credentials",
        ),
        ("DELETE", f"/api/v1/projects/{a}", world["manager"].headers, {}, 403, "forbidden"),
        ("GET", "/api/v1/users", world["viewer"].headers, {}, 403, "forbidden"),
        ("GET", f"/api/v1/projects/{world.project_c}", admin, {}, 404, "not_found"),
        ("GET", f"/api/v1/evidence/{uuid.uuid4()}", admin, {}, 404, "not_found"),
        ("GET", "/nowhere", {}, {}, 404, "not_found"),
        ("DELETE", "/api/v1/projects", admin, {}, 405, "method_not_allowed"),
        ("POST", "/healthz", {}, {}, 405, "method_not_allowed"),
        (
            "POST",
            "/api/v1/projects",
            admin,
            {"json": {"name": "Taken", "framework": "SOC 2"}},
            409,
            "duplicate",
        ),
        (
            "PATCH",
            f"/api/v1/projects/{a}",
            {**admin, "If-Match": "999"},
            {"json": {"name": "Z"}},
            409,
            "version_conflict",
        ),
        (
            "POST",
            "/api/v1/projects",
            admin,
            {"json": {"name": "x" * 5000, "framework": "y"}},
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/api/v1/projects",
            {**admin, "Content-Type": "text/plain"},
            {"content": b"name=x"},
            415,
            "unsupported_media_type",
        ),
        ("GET", "/api/v1/test-boom", admin, {}, 500, "internal_error"),
        ("POST", "/api/v1/test-boom", admin, {"json": {}}, 500, "internal_error"),
    ]
    for method, path, headers, kwargs, status, code in cases:
        with captured_logs():  # keeps the 500's traceback out of the console renderer
            response = client.request(method, path, headers=headers, **kwargs)
        assert_envelope(response, status=status, code=code)
        assert_security_headers(response)
        if path.startswith("/api/"):
            assert response.headers["cache-control"] == "no-store"
        if status == 405:
            assert response.headers["allow"]
        if status == 401 and code == "unauthenticated":
            assert response.headers["www-authenticate"].startswith("Bearer")


def test_error_details_name_each_bad_field(gw):
    _, client, world = gw
    response = client.post(
        f"/api/v1/projects/{world.project_a}/evidence",
        headers=world["admin"].headers,
        json={"title": "", "controlId": "!bad", "effectiveDate": "yesterday", "x": 1},
    )
    body = assert_envelope(response, status=400, code="validation_error")
    fields = {d["field"] for d in body["error"]["details"]}
    assert fields == {"title", "controlId", "effectiveDate", "x"}
    assert all(d["message"] for d in body["error"]["details"])


def test_docs_openapi_and_static_have_security_headers(gw):
    _, client, _ = gw
    for path in ("/docs", "/openapi.json", "/static/docs/swagger-ui.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_security_headers(response)
    assert "swagger-ui" in client.get("/docs").text
    assert client.get("/openapi.json").json()["info"]["title"] == "Studio Platform API"


def test_healthz_and_readyz(gw, backend):
    _, client, _ = gw
    health = assert_envelope(client.get("/healthz"), status=200)
    assert health["data"]["status"] == "ok"
    ready = assert_envelope(client.get("/readyz"), status=200)
    assert ready["data"] == {
        "status": "ready",
        "database": "sqlite" if backend == "sqlite" else "postgresql",
    }


def _unreachable_url(backend: str, tmp_path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/missing-dir/nested/studio.db.engine"
    return "postgresql://postgres@127.0.0.1:1/studio_nowhere"  # port 1: nothing listens


@pytest.mark.parametrize(
    "backend_kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_database_down_answers_503(tmp_path, backend_kind):
    url = _unreachable_url(backend_kind, tmp_path)
    with served(tmp_path, url) as (container, _, client):
        token, _ = container.tokens.issue(uuid.uuid4(), uuid.uuid4())
        assert_envelope(client.get("/healthz"), status=200)
        ready = client.get("/readyz")
        assert_envelope(ready, status=503, code="service_unavailable")
        assert ready.headers["retry-after"] == "5"
        assert_security_headers(ready)
        api = client.get("/api/v1/projects", headers={"Authorization": f"Bearer {token}"})
        assert_envelope(api, status=503, code="service_unavailable")
        api_token = client.get("/api/v1/me", headers={"Authorization": "Bearer stp_" + "x" * 43})
        assert_envelope(api_token, status=503, code="service_unavailable")
        login = client.post(
            "/api/v1/auth/login", json={"email": "a@b.example", "password": "whatever"}
        )
        assert_envelope(login, status=503, code="service_unavailable")


def test_openapi_documents_the_error_envelope_and_never_422(gw):
    _, client, _ = gw
    document = client.get("/openapi.json").json()
    assert "ErrorEnvelope" in document["components"]["schemas"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    operations = [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if path.startswith("/api/v1/")
    ]
    assert len(operations) >= 25
    for path, method, op in operations:
        responses = op["responses"]
        assert "422" not in responses, (method, path)
        for status in ("401", "403", "429", "503"):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, (method, path, status)
        if "{" in path:
            assert "404" in responses, (method, path)
        if method != "get":
            assert {"400", "409", "413"} <= set(responses), (method, path)
    assert "Retry-After" in document["paths"]["/api/v1/projects"]["get"]["responses"]["429"]["headers"]
