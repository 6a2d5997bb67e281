"""Transactional outbox: every state change commits with its events, carrying the metadata
the guide asks for, and a change that fails writes neither state nor event."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from studio import __version__
from studio.domains.projects.models import projects
from studio.domains.projects.schemas import ProjectCreate
from studio.domains.projects.service import create_project
from studio.events.envelope import Event, InvalidEvent
from studio.events.models import events
from tests.conftest import TEST_PASSWORD


class Journal:
    """Reads the events appended since the last look."""

    def __init__(self, container):
        self.container = container
        self.position = self.head()

    def head(self) -> int:
        with self.container.db.read() as conn:
            return conn.execute(select(func.coalesce(func.max(events.c.position), 0))).scalar_one()

    def new(self) -> list:
        with self.container.db.read() as conn:
            stored = list(self.container.store.read(conn, after=self.position, limit=1000))
        if stored:
            self.position = stored[-1].position
        return stored


@pytest.fixture
def journal(container, world):
    return Journal(container)


def call(client, method, url, headers=None, **kwargs):
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    response = client.request(method, url, headers={**(headers or {}), "X-Request-ID": request_id}, **kwargs)
    return response, request_id


def expect(journal, response, request_id, types, actor, status=(200, 201)):
    assert response.status_code in status, response.text
    stored = journal.new()
    assert [e.type for e in stored] == types
    for event in stored:
        meta = event.metadata
        assert meta["service"] == "studio-api"
        assert meta["environment"] == journal.container.settings.environment
        assert meta["app_version"] == __version__
        assert meta["request_id"] == request_id
        assert meta["correlation_id"] == request_id
        assert meta["actor"] == actor, event.type
        assert event.source == "backend" and event.version == "1.0"
    return stored


def test_every_state_change_emits_its_events(client, container, world, journal):
    admin, admin_id = world["admin"].headers, str(world["admin"].user_id)

    r, rid = call(client, "POST", "/api/v1/users", admin,
                  json={"email": "new@one.example", "name": "New", "role": "customer", "password": "long enough password"})
    [created] = expect(journal, r, rid, ["user.created"], admin_id)
    new_id = r.json()["data"]["id"]
    assert created.data["userId"] == new_id and created.stream == f"user:{new_id}"

    r, rid = call(client, "PATCH", f"/api/v1/users/{new_id}", admin, json={"name": "Renamed"})
    [updated] = expect(journal, r, rid, ["user.updated"], admin_id)
    assert updated.data["changed"] == ["name"]

    r, rid = call(client, "POST", "/api/v1/projects", admin, json={"name": "Outbox", "framework": "SOC 2"})
    [project_created] = expect(journal, r, rid, ["project.created"], admin_id)
    project_id = r.json()["data"]["id"]
    assert project_created.stream == f"project:{project_id}"

    r, rid = call(client, "PATCH", f"/api/v1/projects/{project_id}", admin, json={"framework": "ISO 27001"})
    [project_updated] = expect(journal, r, rid, ["project.updated"], admin_id)
    assert project_updated.data["changes"] == {"framework": "ISO 27001"}

    for who, role in ((new_id, "customer"), (str(world["auditor"].user_id), "auditor")):
        r, rid = call(client, "PUT", f"/api/v1/projects/{project_id}/members", admin, json={"userId": who, "role": role})
        expect(journal, r, rid, ["member.added"], admin_id)

    login = client.post("/api/v1/auth/login", json={"email": "new@one.example", "password": "long enough password"})
    customer = {"Authorization": f"Bearer {login.json()['data']['accessToken']}"}
    journal.new()  # auth.logged_in

    r, rid = call(client, "POST", f"/api/v1/projects/{project_id}/evidence", customer, json={"title": "Policy"})
    expect(journal, r, rid, ["evidence.created"], new_id)
    evidence_id = r.json()["data"]["id"]

    r, rid = call(client, "PATCH", f"/api/v1/evidence/{evidence_id}", customer, json={"title": "Policy v2"})
    expect(journal, r, rid, ["evidence.updated"], new_id)

    r, rid = call(client, "POST", f"/api/v1/evidence/{evidence_id}/submit", customer)
    expect(journal, r, rid, ["evidence.submitted"], new_id)

    auditor, auditor_id = world["auditor"].headers, str(world["auditor"].user_id)
    r, rid = call(client, "POST", f"/api/v1/evidence/{evidence_id}/review", auditor,
                  json={"decision": "rejected", "comment": "unsigned"})
    reviewed, rejected = expect(journal, r, rid, ["evidence.reviewed", "evidence.rejected"], auditor_id)
    assert reviewed.data == rejected.data and reviewed.data["decision"] == "rejected"
    assert reviewed.data["reviewId"] == r.json()["data"]["review"]["id"]

    client.patch(f"/api/v1/evidence/{evidence_id}", headers=customer, json={"description": "signed"})
    client.post(f"/api/v1/evidence/{evidence_id}/submit", headers=customer)
    journal.new()
    r, rid = call(client, "POST", f"/api/v1/evidence/{evidence_id}/review", auditor, json={"decision": "approved"})
    expect(journal, r, rid, ["evidence.reviewed", "evidence.approved"], auditor_id)

    r, rid = call(client, "DELETE", f"/api/v1/evidence/{evidence_id}", admin)
    expect(journal, r, rid, ["evidence.deleted"], admin_id)

    r, rid = call(client, "POST", "/api/v1/tokens", customer, json={"name": "script"})
    [token_created] = expect(journal, r, rid, ["token.created"], new_id)
    token = r.json()["data"]
    assert token["token"] not in str(token_created.data)
    r, rid = call(client, "DELETE", f"/api/v1/tokens/{token['id']}", customer)
    expect(journal, r, rid, ["token.revoked"], new_id)

    r, rid = call(client, "DELETE", f"/api/v1/projects/{project_id}/members/{auditor_id}", admin)
    expect(journal, r, rid, ["member.removed"], admin_id)

    r, rid = call(client, "DELETE", f"/api/v1/projects/{project_id}", admin)
    expect(journal, r, rid, ["project.deleted"], admin_id)

    r, rid = call(client, "DELETE", f"/api/v1/users/{new_id}", admin)
    expect(journal, r, rid, ["user.deleted"], admin_id)

    r, rid = call(client, "POST", "/api/v1/auth/login", json={"email": "admin@one.example", "password": "nope"})
    [failed] = expect(journal, r, rid, ["auth.login_failed"], "anonymous", status=(401,))
    assert failed.data["email"] == "admin@one.example"
    assert failed.metadata["organization"] == str(world.org_id)
    assert TEST_PASSWORD not in str(failed.data) and "nope" not in str(failed.data)


def test_events_carry_the_organization_of_the_change(client, world, journal):
    r, _ = call(client, "POST", "/api/v1/projects", world.outsider.headers, json={"name": "Theirs", "framework": "SOC 2"})
    assert r.status_code == 201
    [event] = journal.new()
    assert event.metadata["organization"] == str(world.other_org_id)


def test_a_failed_change_writes_neither_state_nor_event(client, container, world, journal):
    admin = world["admin"].headers
    with container.db.read() as conn:
        before = conn.execute(select(func.count()).select_from(projects)).scalar_one()

    duplicate = client.post("/api/v1/projects", headers=admin, json={"name": "Project A", "framework": "SOC 2"})
    assert duplicate.status_code == 409
    url = f"/api/v1/projects/{world.project_a}"
    client.patch(url, headers=admin, json={"description": "v2"})
    journal.new()
    stale = client.patch(url, headers={**admin, "If-Match": "1"}, json={"description": "stale"})
    assert stale.status_code == 409
    clash = client.patch(f"/api/v1/projects/{world.project_b}", headers=admin, json={"name": "Project A"})
    assert clash.status_code == 409
    forbidden = client.post("/api/v1/users", headers=admin, json={
        "email": "boss@one.example", "name": "Boss", "role": "super_admin", "password": "long enough password"})
    assert forbidden.status_code == 403
    dup_user = client.post("/api/v1/users", headers=admin, json={
        "email": "VIEWER@one.example", "name": "Again", "role": "viewer", "password": "long enough password"})
    assert dup_user.status_code == 409

    assert journal.new() == []
    with container.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(projects)).scalar_one() == before
    names = {p["name"] for p in client.get("/api/v1/projects", headers=admin).json()["data"]["items"]}
    assert names == {"Project A", "Project B"}
    assert client.get(url, headers=admin).json()["data"]["description"] == "v2"


def test_state_is_rolled_back_when_its_events_cannot_be_appended(container, world, journal):
    admin = world["admin"].principal
    with pytest.raises(InvalidEvent), container.db.write(**admin.metadata()) as uow:
        create_project(uow, admin, ProjectCreate(name="Half written", framework="SOC 2"))
        uow.record(Event(type="", data={}, stream="broken"))  # invalid: the append refuses it
    with container.db.read() as conn:
        names = set(conn.execute(select(projects.c.name)).scalars())
    assert "Half written" not in names
    assert journal.new() == []

