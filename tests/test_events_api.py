"""The events API: query, acknowledgments with a bounded wait, metrics, version conflicts."""

from __future__ import annotations

import threading
import time
import uuid

from fastapi import APIRouter, Request
from starlette.testclient import TestClient

from studio.app import create_app
from studio.bootstrap import bootstrap
from studio.events.consumers import matches
from studio.http.api import ok
from tests.conftest import make_settings, seed_world


def _evidence_event(client, world) -> dict:
    r = client.post(
        f"/api/v1/projects/{world.project_a}/evidence",
        headers=world["customer"].headers,
        json={"title": "Firewall rules", "controlId": "SC-7"},
    )
    assert r.status_code == 201, r.text
    listed = client.get(
        "/api/v1/events", params={"type": "evidence.created"}, headers=world["admin"].headers
    )
    assert listed.status_code == 200, listed.text
    items = listed.json()["data"]["items"]
    assert items and all(e["type"] == "evidence.created" for e in items)
    return items[-1]


def test_wait_for_a_consumer_then_report_who_handled(tmp_path, database_url):
    # The consumers run in the app's background thread here, as under `studio serve`.
    c = bootstrap(make_settings(tmp_path, database_url, run_workers=True))
    world = seed_world(c)
    try:
        with TestClient(create_app(c), raise_server_exceptions=False) as client:
            event = _evidence_event(client, world)
            r = client.get(
                f"/api/v1/events/{event['id']}",
                params={"wait_for": "project_activity", "timeout": 5},
                headers=world["admin"].headers,
            )
    finally:
        c.close()
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["complete"] is True
    handled = [a["consumer"] for a in data["handledBy"]]
    assert "project_activity" in handled and "project_activity" not in data["pending"]
    assert data["event"]["id"] == event["id"] and data["event"]["type"] == "evidence.created"
    # Every consumer of evidence.created is reported, as handled or (not waited for, it may
    # still be working) as pending; none twice.
    subscribers = {name for name, consumer in c.dispatcher.consumers.items()
                   if matches(consumer.subscriptions, "evidence.created")}
    assert sorted(handled + data["pending"]) == sorted(subscribers)


def test_wait_is_bounded_when_no_consumer_runs(tmp_path, database_url):
    c = bootstrap(make_settings(tmp_path, database_url, run_workers=False))
    world = seed_world(c)
    try:
        with TestClient(create_app(c), raise_server_exceptions=False) as client:
            event = _evidence_event(client, world)
            started = time.monotonic()
            r = client.get(
                f"/api/v1/events/{event['id']}",
                params={"wait_for": "project_activity", "timeout": 0.4},
                headers=world["admin"].headers,
            )
            elapsed = time.monotonic() - started
            assert r.status_code == 200
            data = r.json()["data"]
            assert (
                data["complete"] is False
                and data["handledBy"] == []
                and "project_activity" in data["pending"]
            )
            assert 0.4 <= elapsed < 3
            too_long = client.get(
                f"/api/v1/events/{event['id']}",
                params={"timeout": 31},
                headers=world["admin"].headers,
            )
            assert too_long.status_code == 400
    finally:
        c.close()


def test_event_access_rules(client, world):
    event = _evidence_event(client, world)
    assert (
        client.get(f"/api/v1/events/{event['id']}", headers=world["auditor"].headers).status_code
        == 403
    )
    assert client.get("/api/v1/events", headers=world["manager"].headers).status_code == 403
    # another organization's admin: the event does not exist for them
    assert (
        client.get(f"/api/v1/events/{event['id']}", headers=world.outsider.headers).status_code
        == 404
    )
    assert (
        client.get(f"/api/v1/events/{uuid.uuid4()}", headers=world["admin"].headers).status_code
        == 404
    )
    assert (
        client.get("/api/v1/events/not-a-uuid", headers=world["admin"].headers).status_code == 400
    )
    bad = client.get(
        f"/api/v1/events/{event['id']}", params={"wait_for": "nope"}, headers=world["admin"].headers
    )
    # A consumer that does not exist is a missing object, like any other named in a request.
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "not_found"
    other = client.get("/api/v1/events", headers=world.outsider.headers).json()["data"]["items"]
    assert all(e["metadata"].get("organization") == str(world.other_org_id) for e in other)


def test_query_filters_and_cursor_pagination(client, world):
    headers = world["admin"].headers
    everything = client.get("/api/v1/events", params={"limit": 500}, headers=headers).json()[
        "data"
    ]["items"]
    positions = [e["position"] for e in everything]
    assert positions == sorted(positions) and len(positions) > 5
    paged, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        body = client.get("/api/v1/events", params=params, headers=headers).json()["data"]
        paged += [e["position"] for e in body["items"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert paged == positions
    stream = f"project:{world.project_a}"
    by_stream = client.get("/api/v1/events", params={"stream": stream}, headers=headers).json()[
        "data"
    ]["items"]
    assert by_stream and all(e["stream"] == stream for e in by_stream)
    members = client.get("/api/v1/events", params={"type": "member.*"}, headers=headers).json()[
        "data"
    ]["items"]
    assert members and all(e["type"].startswith("member.") for e in members)
    actor = str(world["admin"].user_id)
    mine = client.get("/api/v1/events", params={"actor": actor}, headers=headers).json()["data"][
        "items"
    ]
    assert mine and all(e["metadata"]["actor"] == actor for e in mine)
    future = client.get("/api/v1/events", params={"since": "2999-01-01T00:00:00Z"}, headers=headers)
    assert future.json()["data"]["items"] == []
    naive = client.get("/api/v1/events", params={"since": "2020-01-01T00:00:00"}, headers=headers)
    assert naive.status_code == 400
    assert client.get("/api/v1/events", params={"cursor": "x"}, headers=headers).status_code == 400


def test_metrics_expose_publishing_handling_and_lag(client, world):
    _evidence_event(client, world)
    client.app.container.dispatcher.drain()
    text = client.get("/metrics").text
    assert 'studio_events_published_total{type="evidence.created"}' in text
    assert (
        'studio_events_handled_total{consumer="project_activity",type="evidence.created"}' in text
    )
    assert 'studio_consumer_lag_positions{consumer="project_activity"} 0.0' in text
    assert "studio_event_handler_seconds_bucket" in text
    assert 'studio_events_parked{consumer="project_activity",status="parked"} 0.0' in text


def _append_extension(api):
    router = APIRouter()

    @router.post("/api/v1/test-append/{stream}/{expected}")
    def append(request: Request, stream: str, expected: int):
        c = request.app.state.container
        with c.db.write(actor="test") as uow:
            uow.emit("test.appended", stream, {}, expected_version=expected)
        return ok(request, {"ok": True})

    api.include_router(router)


def test_two_writers_at_the_same_version_one_wins_one_gets_409(tmp_path, database_url):
    c = bootstrap(make_settings(tmp_path, database_url, run_workers=False))
    world = seed_world(c)
    stream = f"s-{uuid.uuid4().hex[:8]}"
    try:
        app = create_app(c)
        _append_extension(app.api)
        with TestClient(app, raise_server_exceptions=False) as client:
            assert (
                client.post(
                    f"/api/v1/test-append/{stream}/0", headers=world["admin"].headers
                ).status_code
                == 200
            )
            barrier = threading.Barrier(2)
            statuses: list[int] = []

            def writer():
                barrier.wait()
                r = client.post(f"/api/v1/test-append/{stream}/1", headers=world["admin"].headers)
                statuses.append(r.status_code)
                if r.status_code == 409:
                    assert r.json()["error"]["code"] == "version_conflict"

            threads = [threading.Thread(target=writer) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(statuses) == [200, 409]
            with c.db.read() as conn:
                assert c.store.stream_version(conn, stream) == 2
    finally:
        c.close()


def test_events_routes_are_documented(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/events" in paths and "/api/v1/events/{event_id}" in paths
