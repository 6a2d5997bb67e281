"""An event belongs to the organization of the object it changes, whoever acts: each
organization's trail (`GET /api/v1/events` as its admin) is complete, holds nothing foreign,
and its hash chains verify. Migration 0008 refiles the events written before, without
touching what the chains cover."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import select, text
from starlette.testclient import TestClient
from typer.testing import CliRunner

from studio.app import create_app
from studio.bootstrap import bootstrap
from studio.cli.main import app as cli_app
from studio.db.engine import Database, make_engine
from studio.db.migrate import downgrade, upgrade
from studio.domains.projects.schemas import ProjectCreate
from studio.events.audit import verify
from studio.events.models import events as events_t
from studio.events.models import streams as streams_t
from studio.events.store import EventStore
from tests import corpus
from tests.conftest import World, make_settings, seed_world

API = "/api/v1"


def trail(client: TestClient, actor: Any) -> list[dict[str, Any]]:
    """An organization's whole trail, page by page, as its admin reads it."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500} | ({"cursor": cursor} if cursor else {})
        response = client.get(f"{API}/events", params=params, headers=actor.headers)
        assert response.status_code == 200, response.text
        body = response.json()["data"]
        items += body["items"]
        cursor = body["nextCursor"]
        if cursor is None:
            return items


def streams_of(world: World, other_users: list[str]) -> set[str]:
    """The streams of the second organization's objects."""
    return {f"org:{world.other_org_id}", f"project:{world.project_c}", f"user:{world.outsider.user_id}",
            *(f"user:{u}" for u in other_users)}


def test_a_super_admin_change_is_filed_in_the_organization_it_changes(container, world, client, tmp_path,
                                                                       monkeypatch):
    root = world["super_admin"]  # a member of the first organization
    c_project = world.project_c  # of the second
    ok = client.patch(f"{API}/projects/{c_project}", headers=root.headers, json={"description": "scoped"})
    assert ok.status_code == 200, ok.text
    evidence = client.post(f"{API}/projects/{c_project}/evidence", headers=root.headers,
                           json={"title": "Firewall rules"}).json()["data"]
    uploaded = client.put(f"{API}/evidence/{evidence['id']}/files/raw", params={"filename": "fw.pdf"},
                          headers={**root.headers, "Content-Type": "application/pdf"}, content=corpus.pdf(1))
    assert uploaded.status_code == 201, uploaded.text
    assert client.post(f"{API}/evidence/{evidence['id']}/submit", headers=root.headers).status_code == 200
    hired = client.post(f"{API}/users", headers=root.headers, json={
        "email": "hired@two.example", "name": "Hired", "role": "viewer", "password": "a long enough password",
        "organizationId": str(world.other_org_id)})
    assert hired.status_code == 201, hired.text
    container.dispatcher.drain()  # the document processor's follow-up event, evidence.processed

    with container.db.read() as conn:
        everything = container.store.read(conn, limit=100_000)
    theirs = {str(e.id) for e in everything if e.stream in streams_of(world, [hired.json()["data"]["id"]])}
    by_root = [e for e in everything if e.actor_id == str(root.user_id)]
    assert sorted(e.type for e in by_root) == ["evidence.created", "evidence.submitted", "evidence.uploaded",
                                               "project.updated", "user.created"]
    assert "evidence.processed" in {e.type for e in everything if str(e.id) in theirs}

    # The second organization's trail: complete (every event of its objects, whoever acted,
    # the consumer's follow-up too) and nothing else.
    second = trail(client, world.outsider)
    assert {e["id"] for e in second} == theirs
    assert {str(e.id) for e in by_root} <= theirs
    assert all(e["metadata"]["organization"] == str(world.other_org_id) for e in second)
    for event in second:
        if event["metadata"]["actor"] == str(root.user_id):  # who acted, and from where
            assert event["metadata"]["actor_organization"] == str(world.org_id)
        else:
            assert "actor_organization" not in event["metadata"]
    # The super_admin's own organization's trail holds none of it; its admin cannot open it.
    first = trail(client, world["admin"])
    assert not {e["id"] for e in first} & theirs
    assert all(e["metadata"]["organization"] == str(world.org_id) for e in first)
    for event_id in sorted(theirs)[:3] + [str(by_root[0].id)]:
        assert client.get(f"{API}/events/{event_id}", headers=world["admin"].headers).status_code == 404
        assert client.get(f"{API}/events/{event_id}", headers=world.outsider.headers).status_code == 200

    # The second organization's chains verify (`studio audit verify`), and every one.
    monkeypatch.setenv("STUDIO_DATABASE_URL", container.settings.resolved_database_url)
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path))
    monkeypatch.setattr("studio.logging.configure_logging", lambda *a, **k: None)
    runner = CliRunner()
    result = runner.invoke(cli_app, ["audit", "verify", "--project", str(c_project)])
    assert result.exit_code == 0 and "OK" in result.output, result.output
    assert runner.invoke(cli_app, ["audit", "verify"]).exit_code == 0
    # Every stream of an object belongs to an organization; only the installation-wide ones
    # (the shared framework catalog and the like) to none.
    with container.db.read() as conn:
        owners = dict(conn.execute(select(streams_t.c.stream, streams_t.c.organization_id)).all())
    assert all(org is not None for stream, org in owners.items()
               if stream.split(":")[0] in ("project", "user", "org")), owners


def test_the_verifier_names_an_event_moved_to_another_trail(container, world):
    with container.db.read() as conn:
        moved = conn.execute(select(events_t.c.position).where(
            events_t.c.stream == f"project:{world.project_a}").order_by(events_t.c.position.desc())).scalar()
        assert verify(conn).ok
    with container.db.write() as uow:
        uow.conn.execute(events_t.update().where(events_t.c.position == moved)
                         .values(organization_id=str(world.other_org_id)))
    with container.db.read() as conn:
        report = verify(conn)
    [broken] = report.breaks
    assert broken.position == moved and "organization" in broken.reason


def _migrate(url: str, revision: str) -> None:
    engine = make_engine(url)
    try:
        if revision == "head":
            upgrade(engine)
        else:
            downgrade(engine, revision)
    finally:
        engine.dispose()


def test_migration_0008_refiles_old_events_and_keeps_every_chain(tmp_path, database_url):
    """Also: follow-up events stored before their ids were derived are recognised when a
    replay emits them again."""
    c = bootstrap(make_settings(tmp_path, database_url))
    try:
        world = seed_world(c)
        root, outsider = world["super_admin"].principal, world.outsider.principal
        doomed = c.projects.create(outsider, ProjectCreate(name="Doomed", framework="SOC 2"))
        c.projects.delete(outsider, uuid.UUID(doomed["id"]))
        c.dispatcher.drain()
    finally:
        c.close()
    # Events as the code before 0008 wrote them: the super_admin's change in the second
    # organization in its own (the organization of the caller), a consumer's follow-up in none.
    legacy = Database(database_url, EventStore())
    try:
        project_c = f"project:{world.project_c}"
        with legacy.write(actor=str(root.user_id), organization=str(root.organization_id)) as uow:
            uow.emit("project.updated", project_c, {"projectId": str(world.project_c), "changes": {}})
        with legacy.read() as conn:
            (cause,) = legacy.store.read(conn, stream=project_c, types=["project.created"])
        with legacy.write(actor="consumer:documents.processor", causation_id=str(cause.id)) as uow:
            uow.emit("evidence.processed", project_c, {"projectId": str(world.project_c)})
        with legacy.write() as uow:  # and every event filed by its metadata, as it was
            for position, metadata in uow.conn.execute(select(events_t.c.position, events_t.c.metadata)).all():
                org = orjson.loads(metadata).get("organization")
                uow.conn.execute(events_t.update().where(events_t.c.position == position)
                                 .values(organization_id=org))
    finally:
        legacy.dispose()
    _migrate(database_url, "0006")
    hashed = ("position", "id", "type", "stream", "stream_version", "timestamp", "source", "version",
              "actor_id", "data", "metadata", "prev_hash", "hash")
    snapshot = text(f"SELECT {', '.join(hashed)} FROM events ORDER BY position")  # noqa: S608
    engine = make_engine(database_url)
    with engine.connect() as conn:
        before = conn.execute(snapshot).all()
        filed = dict(conn.execute(text("SELECT position, organization_id FROM events")).all())
    engine.dispose()
    by_position = {row.position: row for row in before}
    wrong = [p for p, row in by_position.items() if row.stream == project_c and filed[p] != str(world.other_org_id)]
    assert len(wrong) == 2  # the gap in the second organization's trail

    _migrate(database_url, "head")
    c = bootstrap(make_settings(tmp_path, database_url))
    try:
        with c.db.read() as conn:
            assert conn.execute(snapshot).all() == before  # what the chains cover is untouched
            report = verify(conn)
            assert report.ok, report.breaks
            filed = dict(conn.execute(text("SELECT position, organization_id FROM events")).all())
        other, first = str(world.other_org_id), str(world.org_id)
        expected = {f"project:{world.project_c}": other, f"project:{doomed['id']}": other,
                    f"org:{world.other_org_id}": other, f"user:{world.outsider.user_id}": other,
                    f"project:{world.project_a}": first, f"project:{world.project_b}": first,
                    f"org:{world.org_id}": first}
        for position, row in by_position.items():
            if row.stream in expected:
                assert filed[position] == expected[row.stream], (row.stream, row.type)
            elif row.stream.startswith("user:"):
                assert filed[position] == first, row.stream
        # Through the API: the second organization's trail now has its two missing events
        # (their metadata still says what it said), and the first one's lost them.
        with TestClient(create_app(c), raise_server_exceptions=False) as client:
            theirs = {e["position"] for e in trail(client, world.outsider)}
            ours = {e["position"] for e in trail(client, world["admin"])}
        assert set(wrong) <= theirs and not set(wrong) & ours
        assert theirs == {p for p, org in filed.items() if org == other}
        # A replay that emits the old follow-up event again (its id was random then) adds
        # nothing; a further one of its type is new.
        with c.db.write(actor="consumer:documents.processor") as uow, \
                uow.caused_by(cause, "documents.processor"):
            uow.emit("evidence.processed", project_c, {"projectId": str(world.project_c)})
        assert uow.appended == []
        with c.db.write(actor="consumer:documents.processor") as uow, \
                uow.caused_by(cause, "documents.processor"):
            uow.emit("evidence.processed", project_c, {"projectId": str(world.project_c)})
            uow.emit("evidence.processed", project_c, {"projectId": str(world.project_c), "n": 2})
        assert [e.data.get("n") for e in uow.appended] == [2]
        # New events of an old stream join its organization's trail and chain.
        c.projects.update(root, world.project_c, _rename(), expected_version=None)
        with c.db.read() as conn:
            (last,) = c.store.read(conn, after=max(by_position) + 1, limit=10)
            assert last.organization == other and last.metadata["organization"] == other
            assert verify(conn).ok
    finally:
        c.close()


def _rename() -> Any:
    from studio.domains.projects.schemas import ProjectUpdate

    return ProjectUpdate(description="after the upgrade")
