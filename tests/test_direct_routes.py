"""Direct routes (studio/direct_routes.py) answer exactly as the FastAPI routes they stand
in front of: same status, headers and envelope for every request, valid or not."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient

from studio.app import create_app
from studio.bootstrap import bootstrap
from studio.domains.evidence.schemas import EvidenceCreate
from tests.conftest import make_settings

# Headers that differ between any two responses (the time, the generated request id).
VARYING = {"date", "x-request-id"}


def _comparable(response: Any) -> tuple[int, dict[str, str], Any]:
    body = response.json() if response.content else None
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ("timestamp", "requestId")}
    headers = {k: v for k, v in response.headers.items() if k not in VARYING}
    return response.status_code, headers, body


@pytest.fixture
def container(tmp_path, database_url):
    # No response cache: a hit would answer for whichever app asked second.
    c = bootstrap(make_settings(tmp_path, database_url, cache_enabled=False))
    yield c
    c.close()


@pytest.fixture
def clients(container):
    with TestClient(create_app(container), raise_server_exceptions=False) as direct, \
            TestClient(create_app(container, direct_routes=False), raise_server_exceptions=False) as fastapi:
        yield direct, fastapi


@pytest.fixture
def evidence(container, world):
    customer = world["customer"].principal
    for i in range(7):
        container.evidence.create(customer, world.project_a, EvidenceCreate(
            title=f"Evidence {i}", controlId=f"AC-{i % 3 + 1}"))


def _requests(world) -> list[tuple[str, dict[str, str]]]:
    a, admin = world.project_a, world["admin"]
    base = f"/api/v1/projects/{a}/evidence"
    cases = [(f"/api/v1/projects/{project}/evidence", actor.headers)
             for actor in [*world.actors.values(), world.outsider]
             for project in (world.project_a, world.project_b, world.project_c, uuid.uuid4())]
    queries = [
        "limit=2", "limit=0", "limit=201", "limit=abc", "limit=1&limit=3", "sort=title&order=asc",
        "sort=updated_at", "sort=bogus", "order=sideways", "status=pending", "status=bogus",
        "controlId=AC-2", "controlId=%00", "controlId=" + "x" * 65, "cursor=garbage", "cursor=",
        "unknown=1", "limit=2&sort=title", "limit=%F0%9F%92%A5",
    ]
    cases += [(f"{base}?{query}", admin.headers) for query in queries]
    cases += [
        (base, {}),  # no credential: the authentication middleware answers
        (base, {"Authorization": "Bearer not-a-token"}),
        (f"/api/v1/projects/{str(a).upper()}/evidence", admin.headers),  # not canonical: FastAPI
        (f"/api/v1/projects/{a.hex}/evidence", admin.headers),
        (f"/api/v1/projects/{{{a}}}/evidence", admin.headers),
        ("/api/v1/projects/not-a-uuid/evidence", admin.headers),
        (f"{base}/", admin.headers),
    ]
    return cases


def test_direct_and_fastapi_routes_answer_alike(clients, world, evidence):
    direct, fastapi = clients
    for path, headers in _requests(world):
        assert _comparable(direct.get(path, headers=headers)) == _comparable(fastapi.get(path, headers=headers)), path


def test_paging_through_the_direct_route_matches_fastapi(clients, world, evidence):
    direct, fastapi = clients
    headers = world["auditor"].headers
    for query in ("limit=2", "limit=3&sort=title&order=asc", "limit=2&status=pending&sort=updated_at"):
        cursors: list[str | None] = [None]
        while True:
            path = f"/api/v1/projects/{world.project_a}/evidence?{query}"
            if cursors[-1]:
                path += f"&cursor={cursors[-1]}"
            one, other = direct.get(path, headers=headers), fastapi.get(path, headers=headers)
            assert one.status_code == 200 and _comparable(one) == _comparable(other)
            cursors.append(one.json()["data"]["nextCursor"])
            if cursors[-1] is None:
                break
        assert len(cursors) > 2, query  # more than one page


def _asgi_get(app: Any, path: str, query: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """One GET through the app's ASGI interface; the status and the scope afterwards."""
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "server": ("testserver", 80), "client": ("127.0.0.1", 5000), "root_path": "",
        "path": path, "raw_path": path.encode(), "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()], "state": {},
    }
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    anyio.run(app, scope, receive, send)
    return status[0], scope


def test_well_formed_requests_skip_fastapi_and_the_rest_reach_it(container, world, evidence):
    app = create_app(container)
    path = f"/api/v1/projects/{world.project_a}/evidence"
    headers = world["viewer"].headers
    # FastAPI's router records the endpoint it matched in the request's scope.
    status, scope = _asgi_get(app, path, "limit=5", headers)
    assert status == 200 and "endpoint" not in scope
    status, scope = _asgi_get(app, path, "limit=0", headers)
    assert status == 400 and scope["endpoint"].__name__ == "list_evidence"
    # A UUID in another spelling than the canonical one: FastAPI parses it.
    status, scope = _asgi_get(app, f"/api/v1/projects/{world.project_a.hex}/evidence", "", headers)
    assert status == 200 and scope["endpoint"].__name__ == "list_evidence"
    # Errors the handler raises are answered by the direct route itself.
    status, scope = _asgi_get(app, f"/api/v1/projects/{world.project_c}/evidence", "", headers)
    assert status == 404 and "endpoint" not in scope


def test_an_unexpected_error_is_a_500_envelope_on_both_paths(clients, container, world, monkeypatch):
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(container.evidence, "page_request", broken)
    direct, fastapi = clients
    path = f"/api/v1/projects/{world.project_a}/evidence"
    answers = [client.get(path, headers=world["admin"].headers) for client in (direct, fastapi)]
    for response in answers:
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "internal_error"
        assert response.json()["success"] is False
    assert _comparable(answers[0]) == _comparable(answers[1])
