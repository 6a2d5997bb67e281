"""Bad input at the boundary: the right 4xx in the envelope, never a 500, nothing half-written.

Every refused request is one row of CASES, sent by test_refused against one seeded world per
backend; each must answer with exactly its status and error code, write nothing, and (where
the row says) name exactly its fields and carry its message. To cover a new refusal, add a
row. Requests that must be accepted, and what they store, have tests of their own below."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from studio.app import create_app
from studio.bootstrap import Container, bootstrap
from tests.conftest import World, make_database_url, make_settings, seed_world
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


# -- the table -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ref:
    """A value known once the world is seeded: the context entry `name` (see `boundary`)."""

    name: str


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # formatted with the context: {project_a}, {evidence}, {viewer} ...
    status: int
    code: str
    fields: frozenset[str] | None = None  # exactly these error-detail fields (None: unchecked)
    who: str | None = "admin"  # the seeded role that sends it; None: no credentials
    json: Any = None  # a JSON body; Ref values are filled in from the context
    content: bytes | Callable[[dict[str, Any]], Any] | None = None  # raw body, or ctx -> body
    headers: tuple[tuple[str, str], ...] = ()  # extra headers, values formatted with the context
    message: str | None = None  # a regex the error message must match (formatted likewise)
    detail_message: str | None = None  # the message every error detail must carry


def case(id: str, method: str, path: str, status: int, code: str, *,
         fields: set[str] | None = None, headers: dict[str, str] | list[tuple[str, str]] = (),
         **options: Any) -> Any:
    pairs = tuple(headers.items()) if isinstance(headers, dict) else tuple(headers)
    frozen = frozenset(fields) if fields is not None else None
    return pytest.param(Case(method, path, status, code, frozen, headers=pairs, **options), id=id)


JSON = {"Content-Type": "application/json"}
DEEP = b"[" * 200_000 + b"]" * 200_000  # under the size limit, over the decoder's depth
PROJECT = {"name": "Mass", "framework": "SOC 2"}


def _over_the_limit(ctx: dict[str, Any]) -> bytes:
    return json.dumps(
        {"name": "Big", "framework": "SOC 2", "description": "x" * (ctx["max_body_bytes"] + 10)}
    ).encode()


def _over_the_limit_chunked(ctx: dict[str, Any]) -> Iterator[bytes]:
    """No Content-Length: the body is streamed and counted as it arrives."""
    payload = _over_the_limit(ctx)
    for start in range(0, len(payload), 64 * 1024):
        yield payload[start : start + 64 * 1024]


# name -> error code; the tokens themselves are made in `boundary` (they need its key and world)
BAD_TOKENS = {
    "expired": "token_expired",
    "forged": "invalid_token",
    "alg-none": "invalid_token",
    "HS384": "invalid_token",
    "wrong-audience": "invalid_token",
    "wrong-issuer": "invalid_token",
    "not-yet-valid": "invalid_token",
    "no-exp": "invalid_token",
    "sub-not-a-uuid": "invalid_token",
    "other-org": "invalid_token",
    "garbage": "invalid_token",
    "unknown-api-token": "invalid_token",
}

CASES = [
    # -- malformed JSON and non-objects
    *[
        case(f"malformed-json-{label}", "POST", "/api/v1/projects", 400, "invalid_json",
             headers=JSON, content=raw, message="^malformed JSON")
        for label, raw in (
            ("cut-off", b'{"name": "x",'),
            ("single-quotes", b"{'name': 'x'}"),
            ("extra-brace", b'{"name": "x"}}'),
            ("not-utf8", b"\xff\xfe"),
            ("not-json", b"NaN-ish"),
        )
    ],
    case("too-deep-json", "POST", "/api/v1/projects", 400, "invalid_json",
         headers=JSON, content=DEEP),
    *[
        case(f"json-{label}-not-an-object", "POST", "/api/v1/projects", 400,
             "validation_error", headers=JSON, content=json.dumps(value).encode())
        for label, value in (("array", [1, 2]), ("string", "a string"), ("number", 42),
                             ("null", None))
    ],
    # -- wrong types and missing fields
    case("project-missing-fields", "POST", "/api/v1/projects", 400, "validation_error",
         json={}, fields={"name", "framework"}),
    case("project-wrong-types", "POST", "/api/v1/projects", 400, "validation_error",
         json={"name": 5, "framework": ["SOC 2"]}, fields={"name", "framework"}),
    case("evidence-score-a-word", "PATCH", "/api/v1/evidence/{evidence}", 400,
         "validation_error", json={"qualityScore": "high"}, fields={"qualityScore"}),
    case("user-bad-email", "POST", "/api/v1/users", 400, "validation_error",
         json={"email": "not-an-email", "name": "N", "role": "viewer",
               "password": "long enough pass"},
         fields={"email"}),
    case("user-short-password", "POST", "/api/v1/users", 400, "validation_error",
         json={"email": "short@one.example", "name": "N", "role": "viewer", "password": "short"},
         fields={"password"}),
    case("limit-not-a-number", "GET", "/api/v1/projects?limit=abc", 400, "invalid_parameter",
         fields={"limit"}),
    case("limit-too-large", "GET", "/api/v1/projects?limit=100000", 400, "invalid_parameter",
         fields={"limit"}),
    case("empty-project-patch", "PATCH", "/api/v1/projects/{project_a}", 400,
         "validation_error", json={}),
    case("evidence-expires-before-effective", "POST", "/api/v1/projects/{project_a}/evidence",
         400, "validation_error",
         json={"title": "T", "effectiveDate": "2025-05-01", "expiresAt": "2025-04-01"}),
    # -- unknown fields: no mass assignment
    *[
        case(f"project-create-{field}", "POST", "/api/v1/projects", 400, "validation_error",
             json={**PROJECT, field: value}, fields={field}, detail_message="unknown field")
        for field, value in (
            ("organizationId", Ref("other_org")),
            ("complianceScore", 100),
            ("id", Ref("random_id")),
            ("createdBy", Ref("viewer")),
            ("version", 7),
        )
    ],
    *[
        case(f"evidence-create-{field}", "POST", "/api/v1/projects/{project_a}/evidence", 400,
             "validation_error", who="customer", json={"title": "Mass", field: value},
             fields={field})
        for field, value in (
            ("status", "approved"),
            ("qualityScore", 100),
            ("organizationId", Ref("other_org")),
            ("projectId", Ref("project_b")),
            ("createdBy", Ref("admin_user")),
        )
    ],
    case("evidence-patch-status", "PATCH", "/api/v1/evidence/{evidence}", 400,
         "validation_error", json={"status": "approved"}, fields={"status"}),
    case("project-patch-complianceScore", "PATCH", "/api/v1/projects/{project_a}", 400,
         "validation_error", json={"complianceScore": 99}, fields={"complianceScore"}),
    case("user-patch-organizationId", "PATCH", "/api/v1/users/{viewer}", 400,
         "validation_error", json={"organizationId": Ref("other_org")},
         fields={"organizationId"}),
    case("login-with-a-role", "POST", "/api/v1/auth/login", 400, "validation_error", who=None,
         json={"email": "admin@one.example", "password": "x", "role": "super_admin"},
         fields={"role"}),
    # -- bodies over the limit
    case("body-over-the-limit", "POST", "/api/v1/projects", 413, "payload_too_large",
         headers=JSON, content=_over_the_limit, message="{max_body_bytes}"),
    case("streamed-body-over-the-limit", "POST", "/api/v1/projects", 413, "payload_too_large",
         headers=JSON, content=_over_the_limit_chunked),
    # -- invalid ids, cursors and versions
    *[
        case(f"id-{label}", method, path, 400, "invalid_parameter")
        for label, method, path in (
            ("not-a-uuid", "GET", "/api/v1/projects/not-a-uuid"),
            ("a-number", "GET", "/api/v1/evidence/123"),
            ("sql", "GET", "/api/v1/users/%27%20OR%201=1"),
            ("member-xyz", "DELETE", "/api/v1/projects/{project_a}/members/xyz"),
            ("uuid-cut-short", "GET", "/api/v1/projects/00000000-0000-0000-0000"),
        )
    ],
    case("member-user-id-not-a-uuid", "PUT", "/api/v1/projects/{project_a}/members", 400,
         "validation_error", json={"userId": "nope", "role": "viewer"}, fields={"userId"}),
    case("cursor-garbage", "GET", "/api/v1/projects?cursor=garbage", 400, "invalid_cursor"),
    case("cursor-wrong-shape", "GET", "/api/v1/projects?cursor=eyJ4IjoxfQ", 400,
         "invalid_cursor"),
    case("cursor-nul", "GET", "/api/v1/projects?cursor=%00", 400, "invalid_cursor"),
    case("cursor-too-long", "GET", "/api/v1/projects?cursor=" + "a" * 2100, 400,  # keyset cursors are at most 2048
         "invalid_cursor", fields={"cursor"}),
    case("if-match-not-a-version", "PATCH", "/api/v1/evidence/{evidence}", 400,
         "invalid_parameter", headers={"If-Match": "v-three"}, json={"title": "New"}),
    case("if-match-stale-version", "PATCH", "/api/v1/evidence/{evidence}", 409,
         "version_conflict", headers={"If-Match": "2"}, json={"title": "New"}),
    # -- no type coercion in bodies
    *[
        case(f"token-days-{label}", "POST", "/api/v1/tokens", 400, "validation_error",
             json={"name": "ci", "expiresInDays": days}, fields={"expiresInDays"})
        for label, days in (("true", True), ("string", "30"), ("fraction", 30.5), ("list", [30]))
    ],
    *[
        case(f"is-active-{label}", "PATCH", "/api/v1/users/{viewer}", 400, "validation_error",
             json={"isActive": flag}, fields={"isActive"})
        for label, flag in (("1", 1), ("yes", "yes"), ("string-false", "false"), ("0", 0))
    ],
    case("project-name-a-number", "POST", "/api/v1/projects", 400, "validation_error",
         json={"name": 123, "framework": "SOC 2"}, fields={"name"}),
    # -- enums and scores
    case("project-status-unknown", "POST", "/api/v1/projects", 400, "validation_error",
         json={"name": "E", "framework": "F", "status": "deleted"}, fields={"status"}),
    case("user-role-unknown", "POST", "/api/v1/users", 400, "validation_error",
         json={"email": "e@one.example", "name": "E", "role": "god",
               "password": "long enough pass"},
         fields={"role"}),
    case("evidence-status-filter-unknown", "GET",
         "/api/v1/projects/{project_a}/evidence?status=lost", 400, "invalid_parameter",
         fields={"status"}),
    case("sort-by-a-secret-column", "GET", "/api/v1/projects?sort=password_hash", 400,
         "invalid_parameter", fields={"sort"}),
    case("review-decision-unknown", "POST", "/api/v1/evidence/{submitted}/review", 400,
         "validation_error", who="auditor", json={"decision": "maybe"}, fields={"decision"}),
    case("review-rejected-without-comment", "POST", "/api/v1/evidence/{submitted}/review", 400,
         "validation_error", who="auditor", json={"decision": "rejected"}),
    *[
        case(f"quality-score-{label}", "PATCH", "/api/v1/evidence/{submitted}", 400,
             "validation_error", json={"qualityScore": score}, fields={"qualityScore"})
        for label, score in (
            ("-1", -1), ("101", 101), ("-0.01", -0.01), ("100.5", 100.5), ("NaN", "NaN"),
            ("string", "50"), ("true", True),
        )
    ],
    # -- names: length and what is left after normalisation
    *[
        case(f"project-name-{label}", "POST", "/api/v1/projects", 400, "validation_error",
             json={"name": name, "framework": "SOC 2"}, fields={"name"})
        for label, name in (
            ("empty", ""), ("blank", "   "), ("control-chars", "\x00\x01\x1f"),
            ("256-chars", "x" * 256),
        )
    ],
    # -- bad credentials, on a read and on a write
    *[
        case(f"bearer-{name}-{method}", method, "/api/v1/projects", 401, code, who=None,
             headers={"Authorization": f"Bearer {{token_{name}}}"},
             json={"name": name, "framework": "F"} if method == "POST" else None)
        for name, code in BAD_TOKENS.items()
        for method in ("GET", "POST")
    ],
    case("two-authorization-headers", "GET", "/api/v1/me", 401, "invalid_token", who=None,
         headers=[("authorization", "Bearer {admin_token}"), ("authorization", "Bearer x.y.z")]),
    *[
        case(f"authorization-{label}", "GET", "/api/v1/me", 401, "invalid_token", who=None,
             headers={"Authorization": header})
        for label, header in (
            ("basic", "Basic YWRtaW46cGFzcw=="), ("bearer-alone", "Bearer"),
            ("bearer-empty", "Bearer "), ("other-scheme", "Token abc"),
        )
    ],
    # -- content types other than JSON
    *[
        case(f"content-type-{content_type.split(';')[0]}", "POST", "/api/v1/projects", 415,
             "unsupported_media_type", headers={"Content-Type": content_type},
             content=json.dumps({"name": "Typed", "framework": "SOC 2"}).encode(),
             message="application/json")
        for content_type in (
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/xml",
        )
    ],
]


# -- the world the cases run against ---------------------------------------------------------
@dataclass
class Boundary:
    container: Container
    client: TestClient
    world: World
    ctx: dict[str, Any]  # what paths, bodies and headers refer to

    def headers(self, case: Case) -> list[tuple[str, str]]:
        sent = list(self.world[case.who].headers.items()) if case.who else []
        return sent + [(name, value.format(**self.ctx)) for name, value in case.headers]


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


def _bad_tokens(key: str, world: World) -> dict[str, str]:
    past = int((dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).timestamp())
    future = int((dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).timestamp())
    other_key = "another-key-of-sufficient-length-0123456789abcdef"
    tokens = {
        "expired": jwt.encode(_claims(world, exp=past, nbf=past - 60, iat=past - 60), key, "HS256"),
        "forged": jwt.encode(_claims(world), other_key, "HS256"),
        "alg-none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(world))}.",
        "HS384": jwt.encode(_claims(world), key, "HS384"),
        "wrong-audience": jwt.encode(_claims(world, aud="another-api"), key, "HS256"),
        "wrong-issuer": jwt.encode(_claims(world, iss="someone-else"), key, "HS256"),
        "not-yet-valid": jwt.encode(_claims(world, nbf=future), key, "HS256"),
        "no-exp": jwt.encode(_claims(world, exp=None), key, "HS256"),
        "sub-not-a-uuid": jwt.encode(_claims(world, sub="admin"), key, "HS256"),
        "other-org": jwt.encode(_claims(world, org=str(world.other_org_id)), key, "HS256"),
        "garbage": "a.b.c",
        "unknown-api-token": "stp_" + "x" * 43,
    }
    assert set(tokens) == set(BAD_TOKENS)
    return tokens


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def boundary_url(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from make_database_url(request.param, request, tmp_path_factory.mktemp("bad-input"))


@pytest.fixture(scope="module")
def boundary(boundary_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Boundary]:
    """One seeded world per backend for all the cases: each is refused and writes nothing
    (test_refused checks that), so none can disturb the next."""
    container = bootstrap(make_settings(tmp_path_factory.mktemp("bad-input-data"), boundary_url))
    try:
        world = seed_world(container)
        with TestClient(create_app(container), raise_server_exceptions=False) as client:
            customer = world["customer"].headers
            ids = []
            for title in ("Firewall export", "Access review"):
                created = client.post(f"/api/v1/projects/{world.project_a}/evidence",
                                      headers=customer, json={"title": title, "controlId": "SC-7"})
                assert created.status_code == 201, created.text
                ids.append(created.json()["data"]["id"])
            submitted = client.post(f"/api/v1/evidence/{ids[1]}/submit", headers=customer)
            assert submitted.status_code == 200, submitted.text
            ctx = {
                "project_a": str(world.project_a),
                "project_b": str(world.project_b),
                "evidence": ids[0],  # a draft, version 1
                "submitted": ids[1],  # in review
                "viewer": str(world["viewer"].user_id),
                "admin_user": str(world["admin"].user_id),
                "other_org": str(world.other_org_id),
                "random_id": str(uuid.uuid4()),
                "admin_token": world["admin"].token,
                "max_body_bytes": container.settings.max_body_bytes,
                **{f"token_{name}": token for name, token in
                   _bad_tokens(container.settings.signing_key, world).items()},
            }
            yield Boundary(container, client, world, ctx)
    finally:
        container.close()


def _filled(value: Any, ctx: dict[str, Any]) -> Any:
    if isinstance(value, Ref):
        return ctx[value.name]
    if isinstance(value, dict):
        return {k: _filled(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, ctx) for v in value]
    return value


@pytest.mark.parametrize("case", CASES)
def test_refused(boundary: Boundary, case: Case) -> None:
    ctx = boundary.ctx
    path = case.path.format(**ctx)
    options: dict[str, Any] = {"headers": boundary.headers(case)}
    if case.json is not None:
        options["json"] = _filled(case.json, ctx)
    if case.content is not None:
        options["content"] = case.content(ctx) if callable(case.content) else case.content
    before = counts(boundary.container)
    response = boundary.client.request(case.method, path, **options)
    error = assert_envelope(response, status=case.status, code=case.code)["error"]
    assert counts(boundary.container) == before, f"{case.method} {path} wrote something"
    if case.fields is not None:
        assert {d["field"] for d in error["details"]} == case.fields, error
    if case.message is not None:
        assert re.search(case.message.format(**ctx), error["message"]), error
    if case.detail_message is not None:
        assert error["details"], error
        assert all(d["message"] == case.detail_message for d in error["details"]), error


def test_the_table_ids_are_unique() -> None:
    ids = [param.id for param in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


# -- what must be accepted -------------------------------------------------------------------
@pytest.fixture
def evidence_id(client, world):
    created = client.post(
        f"/api/v1/projects/{world.project_a}/evidence",
        headers=world["customer"].headers,
        json={"title": "Firewall export", "controlId": "SC-7"},
    )
    assert created.status_code == 201
    return created.json()["data"]["id"]


def test_a_whole_float_is_an_integer(client, world):
    whole = client.post(
        "/api/v1/tokens", headers=world["admin"].headers, json={"name": "ci", "expiresInDays": 30.0}
    )
    assert whole.status_code == 201  # JSON Schema counts 30.0 as an integer


def test_quality_scores_in_range_are_stored(client, world, evidence_id):
    admin = world["admin"].headers
    for score in (0, 100, 55.5):
        response = client.patch(
            f"/api/v1/evidence/{evidence_id}", headers=admin, json={"qualityScore": score}
        )
        assert response.status_code == 200 and response.json()["data"]["qualityScore"] == score


def test_names_up_to_the_limit_are_kept_and_normalised(client, world):
    admin = world["admin"].headers
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
    # A framework is looked up by parameters too: an injection is just an unknown name.
    refused = client.post(
        "/api/v1/projects", headers=admin, json={"name": sql, "framework": "' OR 1=1 --"}
    )
    assert refused.status_code == 404 and refused.json()["error"]["details"][0]["field"] == "framework"
    created = client.post("/api/v1/projects", headers=admin, json={"name": sql, "framework": "SOC 2"})
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


def test_json_with_a_charset_is_accepted(client, world):
    ok = client.post(
        "/api/v1/projects",
        headers={**world["admin"].headers, "Content-Type": "application/json; charset=utf-8"},
        content=json.dumps({"name": "Typed", "framework": "SOC 2"}).encode(),
    )
    assert ok.status_code == 201
