"""Bad input at the boundary: the right 4xx in the envelope, never a 500, nothing half-written."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

import jwt
import pytest
from sqlalchemy import text

from tests.gateway_support import assert_envelope

TABLES = (
    "organizations",
    "users",
    "projects",
    "project_members",
    "evidence",
    "reviews",
    "api_tokens",
    "refresh_tokens",
    "events",
)


def counts(container) -> dict[str, int]:
    with container.db.read() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}  # noqa: S608


@pytest.fixture
def evidence_id(client, world):
    created = client.post(
        f"/api/v1/projects/{world.project_a}/evidence",
        headers=world["customer"].headers,
        json={"title": "Firewall export", "controlId": "SC-7"},
    )
    assert created.status_code == 201
    return created.json()["data"]["id"]


def _rejected(client, container, method, path, *, status, code, fields=None, **kwargs):
    before = counts(container)
    response = client.request(method, path, **kwargs)
    body = assert_envelope(response, status=status, code=code)
    assert counts(container) == before, f"{method} {path} wrote something"
    if fields is not None:
        assert {d["field"] for d in body["error"]["details"]} == set(fields), body["error"]
    return body


def test_malformed_json_and_non_objects(client, container, world):
    admin = {**world["admin"].headers, "Content-Type": "application/json"}
    for raw in (b'{"name": "x",', b"{'name': 'x'}", b'{"name": "x"}}', b"\xff\xfe", b"NaN-ish"):
        body = _rejected(
            client,
            container,
            "POST",
            "/api/v1/projects",
            status=400,
            code="invalid_json",
            headers=admin,
            content=raw,
        )
        assert body["error"]["message"].startswith("malformed JSON")
    deep = b"[" * 200_000 + b"]" * 200_000  # under the size limit, over the decoder's depth
    _rejected(
        client,
        container,
        "POST",
        "/api/v1/projects",
        status=400,
        code="invalid_json",
        headers=admin,
        content=deep,
    )
    for value in ([1, 2], "a string", 42, None):
        _rejected(
            client,
            container,
            "POST",
            "/api/v1/projects",
            status=400,
            code="validation_error",
            headers=admin,
            content=json.dumps(value).encode(),
        )


def test_wrong_types_and_missing_fields(client, container, world, evidence_id):
    admin = world["admin"].headers
    _rejected(
        client,
        container,
        "POST",
        "/api/v1/projects",
        status=400,
        code="validation_error",
        headers=admin,
        json={},
        fields={"name", "framework"},
    )
    _rejected(
        client,
        container,
        "POST",
        "/api/v1/projects",
        status=400,
        code="validation_error",
        headers=admin,
        json={"name": 5, "framework": ["SOC 2"]},
        fields={"name", "framework"},
    )
    _rejected(
        client,
        container,
        "PATCH",
        f"/api/v1/evidence/{evidence_id}",
        status=400,
        code="validation_error",
        headers=admin,
        json={"qualityScore": "high"},
        fields={"qualityScore"},
    )
    _rejected(
        client,
        container,
        "POST",
        "/api/v1/users",
        status=400,
        code="validation_error",
        headers=admin,
        json={
            "email": "not-an-email",
            "name": "N",
            "role": "viewer",
            "password": "long enough pass",
        },
        fields={"email"},
    )
    _rejected(
        client,
        container,
        "POST",
        "/api/v1/users",
        status=400,
        code="validation_error",
        headers=admin,
        json={"email": "short@one.example", "name": "N", "role": "viewer", "password": "short"},
        fields={"password"},
    )
    _rejected(
        client,
        container,
        "GET",
        "/api/v1/projects?limit=abc",
        status=400,
        code="invalid_parameter",
        headers=admin,
        fields={"limit"},
    )
    _rejected(
        client,
        container,
        "GET",
        "/api/v1/projects?limit=100000",
        status=400,
        code="invalid_parameter",
        headers=admin,
        fields={"limit"},
    )
    _rejected(
        client,
        container,
        "PATCH",
        f"/api/v1/projects/{world.project_a}",
        status=400,
        code="validation_error",
        headers=admin,
        json={},
    )
    _rejected(
        client,
        container,
        "POST",
        f"/api/v1/projects/{world.project_a}/evidence",
        status=400,
        code="validation_error",
        headers=admin,
        json={"title": "T", "effectiveDate": "2025-05-01", "expiresAt": "2025-04-01"},
    )


def test_unknown_fields_are_rejected_no_mass_assignment(client, container, world, evidence_id):
    admin = world["admin"].headers
    other_org = str(world.other_org_id)
    for extra in (
        {"organizationId": other_org},
        {"complianceScore": 100},
        {"id": str(uuid.uuid4())},
        {"createdBy": str(world["viewer"].user_id)},
        {"version": 7},
    ):
        body = _rejected(
            client,
            container,
            "POST",
            "/api/v1/projects",
            status=400,
            code="validation_error",
            headers=admin,
            json={"name": "Mass", "framework": "SOC 2", **extra},
            fields=set(extra),
        )
        assert body["error"]["details"][0]["message"] == "unknown field"
    for extra in (
        {"status": "approved"},
        {"qualityScore": 100},
        {"organizationId": other_org},
        {"projectId": str(world.project_b)},
        {"createdBy": str(world["admin"].user_id)},
    ):
        _rejected(
            client,
            container,
            "POST",
            f"/api/v1/projects/{world.project_a}/evidence",
            status=400,
            code="validation_error",
            headers=world["customer"].headers,
            json={"title": "Mass", **extra},
            fields=set(extra),
        )
    _rejected(
        client,
        container,
        "PATCH",
        f"/api/v1/evidence/{evidence_id}",
        status=400,
        code="validation_error",
        headers=admin,
        json={"status": "approved"},
        fields={"status"},
    )
    _rejected(
        client,
        container,
        "PATCH",
        f"/api/v1/projects/{world.project_a}",
        status=400,
        code="validation_error",
        headers=admin,
        json={"complianceScore": 99},
        fields={"complianceScore"},
    )
    _rejected(
        client,
        container,
        "PATCH",
        f"/api/v1/users/{world['viewer'].user_id}",
        status=400,
        code="validation_error",
        headers=admin,
        json={"organizationId": other_org},
        fields={"organizationId"},
    )
    _rejected(
        client,
        container,
        "POST",
        "/api/v1/auth/login",
        status=400,
        code="validation_error",
        json={"email": "admin@one.example", "password": "x", "role": "super_admin"},
        fields={"role"},
    )


def test_body_over_the_limit(client, container, world):
    limit = container.settings.max_body_bytes
    payload = json.dumps(
        {"name": "Big", "framework": "SOC 2", "description": "x" * (limit + 10)}
    ).encode()
    headers = {**world["admin"].headers, "Content-Type": "application/json"}
    body = _rejected(
        client,
        container,
        "POST",
        "/api/v1/projects",
        status=413,
        code="payload_too_large",
        headers=headers,
        content=payload,
    )
    assert str(limit) in body["error"]["message"]

    def chunks():  # no Content-Length: the body is streamed and counted as it arrives
        for start in range(0, len(payload), 64 * 1024):
            yield payload[start : start + 64 * 1024]

    _rejected(
        client,
        container,
        "POST",
        "/api/v1/projects",
        status=413,
        code="payload_too_large",
        headers=headers,
        content=chunks(),
    )


def test_invalid_ids_cursors_and_versions(client, container, world, evidence_id):
    admin = world["admin"].headers
    for path in (
        "/api/v1/projects/not-a-uuid",
        "/api/v1/evidence/123",
        "/api/v1/users/%27%20OR%201=1",
        f"/api/v1/projects/{world.project_a}/members/xyz",
        "/api/v1/projects/00000000-0000-0000-0000",
    ):
        method = "DELETE" if path.endswith("xyz") else "GET"
        _rejected(
            client, container, method, path, status=400, code="invalid_parameter", headers=admin
        )
    _rejected(
        client,
        container,
        "PUT",
        f"/api/v1/projects/{world.project_a}/members",
        status=400,
        code="validation_error",
        headers=admin,
        json={"userId": "nope", "role": "viewer"},
        fields={"userId"},
    )
    for cursor in ("garbage", "eyJ4IjoxfQ", "%00", "a" * 600):
        response = client.get(f"/api/v1/projects?cursor={cursor}", headers=admin)
        assert response.status_code == 400, cursor
        assert response.json()["error"]["code"] in ("invalid_cursor", "invalid_parameter")
    _rejected(
        client,
        container,
        "PATCH",
        f"/api/v1/evidence/{evidence_id}",
        status=400,
        code="invalid_parameter",
        headers={**admin, "If-Match": "v-three"},
        json={"title": "New"},
    )
    _rejected(
        client,
        container,
        "PATCH",
        f"/api/v1/evidence/{evidence_id}",
        status=409,
        code="version_conflict",
        headers={**admin, "If-Match": "2"},
        json={"title": "New"},
    )


def test_no_type_coercion_in_bodies(client, container, world):
    admin = world["admin"].headers
    for days in (True, "30", 30.5, [30]):
        _rejected(
            client,
            container,
            "POST",
            "/api/v1/tokens",
            status=400,
            code="validation_error",
            headers=admin,
            json={"name": "ci", "expiresInDays": days},
            fields={"expiresInDays"},
        )
    whole = client.post("/api/v1/tokens", headers=admin, json={"name": "ci", "expiresInDays": 30.0})
    assert whole.status_code == 201  # JSON Schema counts 30.0 as an integer
    for flag in (1, "yes", "false", 0):
        _rejected(
            client,
            container,
            "PATCH",
            f"/api/v1/users/{world['viewer'].user_id}",
            status=400,
            code="validation_error",
            headers=admin,
            json={"isActive": flag},
            fields={"isActive"},
        )
    _rejected(
        client,
        container,
        "POST",
        "/api/v1/projects",
        status=400,
        code="validation_error",
        headers=admin,
        json={"name": 123, "framework": "SOC 2"},
        fields={"name"},
    )


def test_enums_and_scores(client, container, world, evidence_id):
    admin = world["admin"].headers
    _rejected(
        client,
        container,
        "POST",
        "/api/v1/projects",
        status=400,
        code="validation_error",
        headers=admin,
        json={"name": "E", "framework": "F", "status": "deleted"},
        fields={"status"},
    )
    _rejected(
        client,
        container,
        "POST",
        "/api/v1/users",
        status=400,
        code="validation_error",
        headers=admin,
        json={"email": "e@one.example", "name": "E", "role": "god", "password": "long enough pass"},
        fields={"role"},
    )
    _rejected(
        client,
        container,
        "GET",
        f"/api/v1/projects/{world.project_a}/evidence?status=lost",
        status=400,
        code="invalid_parameter",
        headers=admin,
        fields={"status"},
    )
    _rejected(
        client,
        container,
        "GET",
        "/api/v1/projects?sort=password_hash",
        status=400,
        code="invalid_parameter",
        headers=admin,
        fields={"sort"},
    )
    client.post(f"/api/v1/evidence/{evidence_id}/submit", headers=world["customer"].headers)
    _rejected(
        client,
        container,
        "POST",
        f"/api/v1/evidence/{evidence_id}/review",
        status=400,
        code="validation_error",
        headers=world["auditor"].headers,
        json={"decision": "maybe"},
        fields={"decision"},
    )
    _rejected(
        client,
        container,
        "POST",
        f"/api/v1/evidence/{evidence_id}/review",
        status=400,
        code="validation_error",
        headers=world["auditor"].headers,
        json={"decision": "rejected"},
    )
    for score in (-1, 101, -0.01, 100.5, "NaN", "50", True):
        _rejected(
            client,
            container,
            "PATCH",
            f"/api/v1/evidence/{evidence_id}",
            status=400,
            code="validation_error",
            headers=admin,
            json={"qualityScore": score},
            fields={"qualityScore"},
        )
    for score in (0, 100, 55.5):
        response = client.patch(
            f"/api/v1/evidence/{evidence_id}", headers=admin, json={"qualityScore": score}
        )
        assert response.status_code == 200 and response.json()["data"]["qualityScore"] == score


def test_name_lengths_and_normalisation(client, container, world):
    admin = world["admin"].headers
    for name in ("", "   ", "\x00\x01\x1f", "x" * 256):
        _rejected(
            client,
            container,
            "POST",
            "/api/v1/projects",
            status=400,
            code="validation_error",
            headers=admin,
            json={"name": name, "framework": "SOC 2"},
            fields={"name"},
        )
    ok = client.post(
        "/api/v1/projects", headers=admin, json={"name": "x" * 255, "framework": "SOC 2"}
    )
    assert ok.status_code == 201 and len(ok.json()["data"]["name"]) == 255
    decomposed = "Cafe\u0301 re\u0301sume\u0301"
    created = client.post(
        "/api/v1/projects",
        headers=admin,
        json={
            "name": f"  {decomposed}\x00\x07\u202e ",
            "framework": "ISO\x1b 27001",
            "description": "line one\nline\ttwo\x00\x08 \u202eend",
        },
    )
    data = created.json()["data"]
    assert data["name"] == "Caf\u00e9 r\u00e9sum\u00e9"
    assert data["framework"] == "ISO 27001"
    assert data["description"] == "line one\nline\ttwo end"
    stored = client.get(f"/api/v1/projects/{data['id']}", headers=admin).json()["data"]
    assert stored["name"] == data["name"]


def test_sql_and_html_payloads_are_stored_inert(client, container, world):
    admin = world["admin"].headers
    sql = "Robert'); DROP TABLE projects;--"
    created = client.post(
        "/api/v1/projects", headers=admin, json={"name": sql, "framework": "' OR 1=1 --"}
    )
    assert created.status_code == 201
    assert created.json()["data"]["name"] == sql  # kept literally: parameters, never SQL
    assert counts(container)["projects"] == 4
    html_name = "<b>bold</b> <script>alert(1)</script>"
    description = (
        '<p onclick="steal()">Hi <strong>there</strong></p><script>alert(1)</script>'
        '<a href="javascript:alert(1)">x</a><a href="https://example.org">ok</a>'
        '<img src=x onerror=alert(1)><iframe src="https://evil.example"></iframe>'
    )
    created = client.post(
        f"/api/v1/projects/{world.project_a}/evidence",
        headers=admin,
        json={"title": html_name, "description": description},
    )
    assert created.status_code == 201
    assert created.headers["content-type"] == "application/json"
    data = created.json()["data"]
    assert (
        data["title"] == html_name
    )  # a plain field keeps the literal text; clients never render it
    cleaned = data["description"]
    for dangerous in ("<script", "onclick", "javascript:", "onerror", "<img", "<iframe"):
        assert dangerous not in cleaned, cleaned
    assert "<p>Hi <strong>there</strong></p>" in cleaned
    assert 'href="https://example.org"' in cleaned and "noopener" in cleaned
    fetched = client.get(f"/api/v1/evidence/{data['id']}", headers=admin).json()["data"]
    assert fetched["description"] == cleaned and fetched["title"] == html_name


def _claims(world, **overrides):
    now = dt.datetime.now(dt.UTC)
    claims = {
        "sub": str(world["admin"].user_id),
        "org": str(world.org_id),
        "aud": "studio-api",
        "iss": "studio-platform",
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + dt.timedelta(minutes=5)).timestamp()),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_bad_tokens(client, container, world):
    key = container.settings.signing_key
    past = int((dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).timestamp())
    future = int((dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).timestamp())
    tokens = {
        "expired": (
            jwt.encode(_claims(world, exp=past, nbf=past - 60, iat=past - 60), key, "HS256"),
            "token_expired",
        ),
        "forged": (
            jwt.encode(
                _claims(world), "another-key-of-sufficient-length-0123456789abcdef", "HS256"
            ),
            "invalid_token",
        ),
        "alg none": (
            f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(world))}.",
            "invalid_token",
        ),
        "HS384": (jwt.encode(_claims(world), key, "HS384"), "invalid_token"),
        "wrong audience": (
            jwt.encode(_claims(world, aud="another-api"), key, "HS256"),
            "invalid_token",
        ),
        "wrong issuer": (
            jwt.encode(_claims(world, iss="someone-else"), key, "HS256"),
            "invalid_token",
        ),
        "not yet valid": (jwt.encode(_claims(world, nbf=future), key, "HS256"), "invalid_token"),
        "no exp": (jwt.encode(_claims(world, exp=None), key, "HS256"), "invalid_token"),
        "sub not a uuid": (jwt.encode(_claims(world, sub="admin"), key, "HS256"), "invalid_token"),
        "other org": (
            jwt.encode(_claims(world, org=str(world.other_org_id)), key, "HS256"),
            "invalid_token",
        ),
        "garbage": ("a.b.c", "invalid_token"),
        "unknown api token": ("stp_" + "x" * 43, "invalid_token"),
    }
    for name, (token, code) in tokens.items():
        for method, path, kwargs in (
            ("GET", "/api/v1/projects", {}),
            ("POST", "/api/v1/projects", {"json": {"name": name, "framework": "F"}}),
        ):
            _rejected(
                client,
                container,
                method,
                path,
                status=401,
                code=code,
                headers={"Authorization": f"Bearer {token}"},
                **kwargs,
            )
    two = [("authorization", f"Bearer {world['admin'].token}"), ("authorization", "Bearer x.y.z")]
    _rejected(client, container, "GET", "/api/v1/me", status=401, code="invalid_token", headers=two)
    for header in ("Basic YWRtaW46cGFzcw==", "Bearer", "Bearer ", "Token abc"):
        _rejected(
            client,
            container,
            "GET",
            "/api/v1/me",
            status=401,
            code="invalid_token",
            headers={"Authorization": header},
        )


def test_wrong_content_type(client, container, world):
    admin = world["admin"].headers
    payload = json.dumps({"name": "Typed", "framework": "SOC 2"}).encode()
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
    ):
        body = _rejected(
            client,
            container,
            "POST",
            "/api/v1/projects",
            status=415,
            code="unsupported_media_type",
            headers={**admin, "Content-Type": content_type},
            content=payload,
        )
        assert "application/json" in body["error"]["message"]
    ok = client.post(
        "/api/v1/projects",
        headers={**admin, "Content-Type": "application/json; charset=utf-8"},
        content=payload,
    )
    assert ok.status_code == 201
