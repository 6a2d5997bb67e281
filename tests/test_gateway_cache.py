"""Response cache: key method:url:user, TTL, and no stale read after any write.

Each test runs on the in-memory backend (one process) and on Redis with two app
instances sharing one Redis and one database (two API processes): reads go to one
instance, writes to the other.
"""

from __future__ import annotations

import uuid
from contextlib import ExitStack

import pytest

from studio.gateway import cache as cache_module
from tests.conftest import TEST_PASSWORD, seed_world, service_url
from tests.gateway_support import assert_envelope, redis_prefix, served
from tests.timing_support import FakeClock


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def apps(request, tmp_path, database_url):
    """(reader, writer, world, container): two clients; one process or two sharing Redis."""
    options = {"cache_enabled": True, "cache_ttl_seconds": 30}
    with ExitStack() as stack:
        if request.param == "memory":
            container, _, client = stack.enter_context(served(tmp_path, database_url, **options))
            yield client, client, seed_world(container), container
        else:
            url = service_url("redis")
            prefix = stack.enter_context(redis_prefix(url))
            options |= {"redis_url": url, "redis_key_prefix": prefix}
            container, _, reader = stack.enter_context(
                served(tmp_path / "r", database_url, **options)
            )
            _, _, writer = stack.enter_context(served(tmp_path / "w", database_url, **options))
            yield reader, writer, seed_world(container), container


def _get(client, path, headers):
    response = client.get(path, headers=headers)
    return response, response.headers.get("x-cache")


def test_hit_has_its_own_request_id_and_same_data(apps):
    reader, _, world, _ = apps
    path = f"/api/v1/projects/{world.project_a}"
    first, state1 = _get(reader, path, world["viewer"].headers)
    second, state2 = _get(reader, path, {**world["viewer"].headers, "X-Request-ID": "second-read"})
    assert (state1, state2) == ("miss", "hit")
    body1 = assert_envelope(first, status=200)
    body2 = assert_envelope(second, status=200)
    assert body2["requestId"] == "second-read" != body1["requestId"]
    assert body2["data"] == body1["data"]
    assert second.headers["x-content-type-options"] == "nosniff"
    assert second.headers["cache-control"] == "no-store"  # the cache is ours, not the browser's


def test_key_is_method_url_and_user(apps):
    reader, _, world, _ = apps
    admin, viewer = world["admin"].headers, world["viewer"].headers
    mine = _get(reader, "/api/v1/me", admin)
    assert _get(reader, "/api/v1/me", admin)[1] == "hit"
    theirs, state = _get(reader, "/api/v1/me", viewer)
    assert state == "miss"
    assert (
        theirs.json()["data"]["id"] == str(world["viewer"].user_id) != mine[0].json()["data"]["id"]
    )
    # The admin's project list holds project B; the viewer's must never be served from it.
    admin_list = {
        p["name"] for p in reader.get("/api/v1/projects", headers=admin).json()["data"]["items"]
    }
    viewer_list = {
        p["name"] for p in reader.get("/api/v1/projects", headers=viewer).json()["data"]["items"]
    }
    assert admin_list == {"Project A", "Project B"} and viewer_list == {"Project A"}
    assert _get(reader, "/api/v1/projects?limit=1", admin)[1] == "miss"
    assert _get(reader, "/api/v1/projects?limit=1", admin)[1] == "hit"
    assert _get(reader, "/api/v1/projects?limit=2", admin)[1] == "miss"


def test_ttl_expires_entries(tmp_path, database_url, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(cache_module, "time", clock)  # the in-memory cache's time.monotonic
    with served(tmp_path, database_url, cache_ttl_seconds=1) as (container, _, client):
        world = seed_world(container)
        assert _get(client, "/api/v1/me", world["viewer"].headers)[1] == "miss"
        clock.advance(1.0)
        assert _get(client, "/api/v1/me", world["viewer"].headers)[1] == "hit"  # 1 s old: kept
        clock.advance(0.1)
        assert _get(client, "/api/v1/me", world["viewer"].headers)[1] == "miss"


def test_no_stale_read_after_a_write_by_the_same_or_another_user(apps):
    reader, writer, world, _ = apps
    path = f"/api/v1/projects/{world.project_a}"
    for round_, (who_writes, who_reads) in enumerate(
        [("admin", "admin"), ("admin", "viewer"), ("manager", "auditor"), ("manager", "manager")]
    ):
        reads = world[who_reads].headers
        _get(reader, path, reads)
        assert _get(reader, path, reads)[1] == "hit"  # the entry that could go stale is there
        name = f"Renamed {round_}"
        patched = writer.patch(path, headers=world[who_writes].headers, json={"name": name})
        assert patched.status_code == 200, patched.text
        after, state = _get(reader, path, reads)
        assert state == "miss" and after.json()["data"]["name"] == name


def test_no_stale_list_after_evidence_is_created_and_reviewed(apps):
    reader, writer, world, _ = apps
    listing = f"/api/v1/projects/{world.project_a}/evidence"
    auditor = world["auditor"].headers
    assert reader.get(listing, headers=auditor).json()["data"]["items"] == []
    created = writer.post(listing, headers=world["customer"].headers, json={"title": "Backup log"})
    evidence_id = created.json()["data"]["id"]
    assert [e["id"] for e in reader.get(listing, headers=auditor).json()["data"]["items"]] == [
        evidence_id
    ]
    writer.post(f"/api/v1/evidence/{evidence_id}/submit", headers=world["customer"].headers)
    assert (
        reader.get(f"/api/v1/evidence/{evidence_id}", headers=auditor).json()["data"]["status"]
        == "in_review"
    )
    writer.post(
        f"/api/v1/evidence/{evidence_id}/review", headers=auditor, json={"decision": "approved"}
    )
    assert reader.get(listing, headers=auditor).json()["data"]["items"][0]["status"] == "approved"


def test_role_change_takes_effect_on_the_next_read(apps):
    reader, writer, world, _ = apps
    manager = world["manager"]
    assert _get(reader, "/api/v1/users", manager.headers)[0].status_code == 200
    assert _get(reader, "/api/v1/users", manager.headers)[1] == "hit"
    demoted = writer.patch(
        f"/api/v1/users/{manager.user_id}", headers=world["admin"].headers, json={"role": "viewer"}
    )
    assert demoted.status_code == 200
    assert_envelope(
        reader.get("/api/v1/users", headers=manager.headers), status=403, code="forbidden"
    )


def test_removed_member_loses_cached_project(apps):
    reader, writer, world, _ = apps
    viewer = world["viewer"]
    path = f"/api/v1/projects/{world.project_a}"
    _get(reader, path, viewer.headers)
    assert _get(reader, path, viewer.headers)[1] == "hit"
    removed = writer.delete(f"{path}/members/{viewer.user_id}", headers=world["admin"].headers)
    assert removed.status_code == 200
    assert_envelope(reader.get(path, headers=viewer.headers), status=404, code="not_found")


def test_deactivated_user_and_ended_sessions_get_no_cached_reads(apps):
    reader, writer, world, _ = apps
    # Deactivation.
    customer = world["customer"].headers
    _get(reader, "/api/v1/me", customer)
    assert (
        writer.delete(
            f"/api/v1/users/{world['customer'].user_id}", headers=world["admin"].headers
        ).status_code
        == 200
    )
    assert_envelope(reader.get("/api/v1/me", headers=customer), status=401, code="invalid_token")
    # Logout.
    login = writer.post(
        "/api/v1/auth/login", json={"email": "auditor@one.example", "password": TEST_PASSWORD}
    )
    session = {"Authorization": f"Bearer {login.json()['data']['accessToken']}"}
    _get(reader, "/api/v1/me", session)
    assert _get(reader, "/api/v1/me", session)[1] == "hit"
    assert writer.post("/api/v1/auth/logout", headers=session).status_code == 200
    assert_envelope(reader.get("/api/v1/me", headers=session), status=401, code="invalid_token")
    # Refresh token reuse revokes the family, and with it the cached reads of its tokens.
    login = writer.post(
        "/api/v1/auth/login", json={"email": "viewer@one.example", "password": TEST_PASSWORD}
    )
    pair = login.json()["data"]
    session = {"Authorization": f"Bearer {pair['accessToken']}"}
    _get(reader, "/api/v1/me", session)
    assert _get(reader, "/api/v1/me", session)[1] == "hit"
    assert (
        writer.post("/api/v1/auth/refresh", json={"refreshToken": pair["refreshToken"]}).status_code
        == 200
    )
    reused = writer.post("/api/v1/auth/refresh", json={"refreshToken": pair["refreshToken"]})
    assert_envelope(reused, status=401, code="refresh_token_reused")
    assert_envelope(reader.get("/api/v1/me", headers=session), status=401, code="invalid_token")


def test_super_admin_reads_across_organizations_are_never_stale(apps):
    reader, writer, world, _ = apps
    root = world["super_admin"].headers
    path = f"/api/v1/projects/{world.project_c}"
    assert reader.get(path, headers=root).json()["data"]["name"] == "Project C"
    renamed = writer.patch(path, headers=world.outsider.headers, json={"name": "Project C2"})
    assert renamed.status_code == 200
    again, state = _get(reader, path, root)
    assert again.json()["data"]["name"] == "Project C2" and state != "hit"


def test_errors_and_writes_are_never_cached(apps):
    reader, _, world, _ = apps
    admin = world["admin"].headers
    missing = f"/api/v1/evidence/{uuid.uuid4()}"
    for _ in range(2):
        response, state = _get(reader, missing, admin)
        assert response.status_code == 404 and state == "miss"
    for _ in range(2):
        response, state = _get(reader, "/api/v1/users", world["viewer"].headers)
        assert response.status_code == 403 and state == "miss"
    ids = set()
    for i in range(2):
        created = reader.post(
            "/api/v1/projects", headers=admin, json={"name": f"P{i}", "framework": "SOC 2"}
        )
        assert created.status_code == 201 and "x-cache" not in created.headers
        ids.add(created.json()["data"]["id"])
    assert len(ids) == 2
    assert "x-cache" not in reader.get("/healthz").headers
    assert "x-cache" not in reader.get("/api/v1/me").headers  # anonymous: 401, never cached


def test_only_envelopes_of_bounded_size_are_kept(tmp_path, database_url):
    from starlette.responses import Response

    def download() -> Response:
        return Response(b"%PDF-1.7 not an envelope", media_type="application/pdf")

    with served(tmp_path, database_url) as (container, app, client):
        app.api.add_api_route("/api/v1/test-download", download, methods=["GET"])
        world = seed_world(container)
        for _ in range(2):
            response = client.get("/api/v1/test-download", headers=world["admin"].headers)
            assert response.content.startswith(b"%PDF") and response.headers["x-cache"] == "miss"
        layer = app
        while not hasattr(layer, "max_entry_bytes"):  # the cache layer of the stack
            layer = layer.app
        layer.max_entry_bytes = 450  # the organization fits, the project list does not
        big = [
            client.get("/api/v1/projects", headers=world["admin"].headers).headers["x-cache"]
            for _ in range(2)
        ]
        small = [
            client.get("/api/v1/organizations/current", headers=world["admin"].headers).headers[
                "x-cache"
            ]
            for _ in range(2)
        ]
        assert big == ["miss", "miss"] and small == ["miss", "hit"]
