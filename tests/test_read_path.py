"""The evidence list's fast read path (prebuilt statements, inline SQLite reads, cached
token verification) answers exactly what the general path does."""

from __future__ import annotations

import datetime as dt
from typing import Any
import time
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from studio.domains.evidence.schemas import EvidenceCreate
from studio.errors import AppError
from studio.events.envelope import iso_utc
from studio.security import AccessTokens
from studio.wire import wire_value


def _walk(client, url: str, headers: dict[str, str]) -> list[dict]:
    items, cursor = [], None
    while True:
        reply = client.get(url + (f"&cursor={cursor}" if cursor else ""), headers=headers)
        assert reply.status_code == 200, reply.text
        data = reply.json()["data"]
        items += data["items"]
        cursor = data["nextCursor"]
        if cursor is None:
            return items


def test_evidence_pages_return_every_row_once_in_order(client, world, container):
    customer = world["customer"].principal
    created = [container.evidence.create(customer, world.project_a,
                                         EvidenceCreate(title=f"Evidence {i}", controlId=f"AC-{i % 2}"))
               for i in range(7)]
    for item in created[:2]:
        container.evidence.submit(customer, uuid.UUID(item["id"]))
    base = f"/api/v1/projects/{world.project_a}/evidence"
    auditor = world["auditor"].headers

    newest_first = _walk(client, f"{base}?limit=3", auditor)
    assert len(newest_first) == 7 and len({e["id"] for e in newest_first}) == 7
    keys = [(e["createdAt"], e["id"]) for e in newest_first]
    assert keys == sorted(keys, reverse=True)

    by_title = _walk(client, f"{base}?limit=2&sort=title&order=asc", auditor)
    assert [e["title"] for e in by_title] == sorted(e["title"] for e in newest_first)

    in_review = _walk(client, f"{base}?limit=1&status=in_review", auditor)
    assert sorted(e["id"] for e in in_review) == sorted(e["id"] for e in created[:2])
    assert {e["controlId"] for e in _walk(client, f"{base}?limit=2&controlId=AC-1", auditor)} == {"AC-1"}


def test_evidence_list_still_hides_foreign_projects_and_rejects_bad_cursors(client, world):
    customer = world["customer"].headers
    hidden = client.get(f"/api/v1/projects/{world.project_b}/evidence", headers=customer)
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_found"
    foreign = client.get(f"/api/v1/projects/{world.project_c}/evidence", headers=world["admin"].headers)
    assert foreign.status_code == 404
    first = client.get(f"/api/v1/projects/{world.project_a}/evidence?limit=1",
                       headers=world["auditor"].headers).json()["data"]
    if first["nextCursor"]:
        other_order = client.get(f"/api/v1/projects/{world.project_a}/evidence?limit=1&order=asc"
                                 f"&cursor={first['nextCursor']}", headers=world["auditor"].headers)
        assert other_order.status_code == 400
    garbage = client.get(f"/api/v1/projects/{world.project_a}/evidence?cursor=not-a-cursor",
                         headers=world["auditor"].headers)
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "invalid_cursor"


def _tokens() -> AccessTokens:
    return AccessTokens("k" * 64, audience="studio-api", issuer="studio-platform", ttl_seconds=900)


def test_a_cached_access_token_still_expires():
    tokens = _tokens()
    tokens.LEEWAY_SECONDS = 0
    now = dt.datetime.now(dt.UTC)
    token, expires = tokens.issue(uuid.uuid4(), uuid.uuid4(),
                                  now=now - dt.timedelta(seconds=2), ttl=dt.timedelta(seconds=3))
    tokens.verify(token)
    tokens.verify(token)  # from the cache
    time.sleep(max(0.0, expires.timestamp() - time.time()) + 0.2)
    with pytest.raises(AppError) as err:
        tokens.verify(token)
    assert err.value.code == "token_expired"


def test_a_tampered_token_fails_after_the_genuine_one_was_cached():
    tokens = _tokens()
    token, _ = tokens.issue(uuid.uuid4(), uuid.uuid4())
    tokens.verify(token)
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    with pytest.raises(AppError) as err:
        tokens.verify(forged)
    assert err.value.code == "invalid_token"


offsets = st.builds(lambda minutes: dt.timezone(dt.timedelta(minutes=minutes)), st.integers(-720, 720))


@given(st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31),
                    timezones=st.just(dt.UTC) | offsets))
def test_wire_timestamps_keep_the_one_wire_form(moment):
    assert wire_value(moment) == iso_utc(moment)


def _evidence_rows(container, world, rng_seed: int) -> None:
    """Evidence with every kind of value the wire form must render: nulls, floats, dates,
    non-ASCII titles, equal timestamps (the id breaks the tie)."""
    import random

    from sqlalchemy import insert

    from studio.db import utcnow
    from studio.domains.evidence.models import evidence

    rng = random.Random(rng_seed)
    now = utcnow()
    rows = []
    for i in range(23):
        rows.append({
            "id": uuid.UUID(int=rng.getrandbits(128)), "organization_id": world.org_id,
            "project_id": world.project_a, "title": rng.choice(["Zugriff prüfen", "αβγ", "Policy", "日本"]) + f" {i}",
            "description": rng.choice(["", "<b>x</b>", "line\nbreak"]), "control_id": rng.choice([None, "AC-1", "AC-2"]),
            "status": rng.choice(["pending", "in_review", "approved"]),
            "quality_score": rng.choice([None, 0.0, 55.5, 100.0, 1 / 3]),
            "effective_date": rng.choice([None, dt.date(2026, 1, 31), dt.date(1999, 12, 1)]),
            "expires_at": rng.choice([None, dt.date(2027, 6, 30)]),
            "created_by": rng.choice([None, world["customer"].principal.user_id]),
            # a few share a timestamp: the page order falls back to the id
            "created_at": now - dt.timedelta(seconds=rng.choice([0, 1, 1, 2, 3600]), microseconds=rng.choice([0, 7])),
            "updated_at": now, "version": rng.randint(1, 5),
        })
    with container.db.write() as uow:
        uow.conn.execute(insert(evidence), rows)


@pytest.mark.parametrize("sort", ["created_at", "updated_at", "title"])
@pytest.mark.parametrize("desc", [True, False])
def test_the_wire_page_path_returns_what_the_general_path_does(container, world, sort, desc):
    from studio.domains.evidence.repository import EvidenceRepository
    from studio.domains.evidence.service import EVIDENCE_FIELDS
    from studio.domains.users.repository import load_principal
    from studio.principal import AuthInfo
    from studio.wire import to_wire

    _evidence_rows(container, world, rng_seed=len(sort) + desc)
    for equal in ({"project_id": world.project_a}, {"project_id": world.project_a, "status": "pending"},
                  {"project_id": world.project_a, "control_id": "AC-1"}):
        general_cursor = wire_cursor = None
        pages = 0
        while True:
            with container.db.read() as conn:
                repo = EvidenceRepository(conn)
                general = repo.find_all(equal=equal, sort=sort, desc=desc, cursor=general_cursor, limit=4)
                items, wire_cursor = repo.page_request(EVIDENCE_FIELDS, equal=equal, sort=sort, desc=desc,
                                                       cursor=wire_cursor, limit=4).result(conn)
            assert items == [to_wire(r, EVIDENCE_FIELDS) for r in general.items]
            assert wire_cursor == general.next_cursor
            # The same page fetched along with the caller, in one statement.
            admin = world["admin"].principal
            with container.db.read() as conn:
                page = EvidenceRepository(conn).page_request(EVIDENCE_FIELDS, equal=equal, sort=sort, desc=desc,
                                                             cursor=general_cursor, limit=4)
                caller = load_principal(conn, AuthInfo(admin.user_id, admin.organization_id, "jwt"),
                                        world.project_a, along=page)
                # fetched by the combined statement on PostgreSQL, by its own on SQLite
                assert (page.rows is not None) == (conn.dialect.name == "postgresql")
                assert caller is not None and caller.project is not None
                assert page.result(conn) == (items, wire_cursor)
            general_cursor = general.next_cursor
            pages += 1
            if general_cursor is None:
                break
        assert pages >= 2 or equal.keys() != {"project_id"}


def test_the_caller_and_the_project_load_in_one_query_with_the_same_visibility(container, world):
    """load_principal(..., project_id) decides visibility as the project query does, for
    every role and own / unassigned / foreign project."""
    from studio.domains.evidence.repository import EvidenceRepository
    from studio.domains.evidence.service import EVIDENCE_FIELDS
    from studio.domains.projects.repository import ProjectRepository
    from studio.domains.users.repository import load_principal
    from studio.principal import AuthInfo

    _evidence_rows(container, world, rng_seed=7)
    projects = [world.project_a, world.project_b, world.project_c, uuid.uuid4()]
    for actor in [*world.actors.values(), world.outsider]:
        principal = actor.principal
        # a token, and a web session (whose query also checks the session is not revoked)
        for auth in (AuthInfo(principal.user_id, principal.organization_id, "jwt"),
                     AuthInfo(principal.user_id, principal.organization_id, "session", session_id=uuid.uuid4())):
            for project_id in projects:
                with container.db.read() as conn:
                    repo = ProjectRepository(conn)
                    separately = repo.get_visible(principal, project_id)
                    combined = load_principal(conn, auth, project_id)
                    assert combined is not None and combined.role == principal.role
                    together = repo.get_visible(combined, project_id)
                    # ... and with a page of the project's evidence joined to the query
                    page = EvidenceRepository(conn).page_request(EVIDENCE_FIELDS, equal={"project_id": project_id},
                                                                 sort="created_at", desc=True, limit=3)
                    with_page = load_principal(conn, auth, project_id, along=page)
                    assert with_page == combined and with_page.project == combined.project
                    assert (page.rows is not None) == (conn.dialect.name == "postgresql")
                    alone = EvidenceRepository(conn).page_request(
                        EVIDENCE_FIELDS, equal={"project_id": project_id}, sort="created_at", desc=True, limit=3)
                    assert page.result(conn) == alone.result(conn)
                assert (together is None) == (separately is None), (actor.role, project_id)
                if together is not None:
                    assert together[1] == separately[1]
                    assert {k: together[0][k] for k in separately[0].keys() if k != "member_role"} == \
                        {k: separately[0][k] for k in separately[0].keys() if k != "member_role"}


# SQLite reads are local file reads with no connection to lose: they always run on the loop.
POSTGRES_ONLY = pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


def _request_for(container) -> Any:
    from types import SimpleNamespace

    from starlette.requests import Request

    app = SimpleNamespace(state=SimpleNamespace(container=container))
    return Request({"type": "http", "app": app, "headers": [], "method": "GET", "path": "/"})


def test_a_read_runs_on_the_event_loop_thread(container):
    """Short reads skip the worker-thread hop on both backends."""
    import threading

    import anyio

    from studio.api import run_read

    def read() -> tuple[str, int]:
        with container.db.read() as conn:
            return threading.current_thread().name, conn.exec_driver_sql("SELECT 41 + 1").scalar_one()

    async def main() -> tuple[str, int]:
        return await run_read(_request_for(container), read)

    assert anyio.run(main) == (threading.current_thread().name, 42)


@POSTGRES_ONLY
def test_a_slow_read_leaves_the_event_loop_for_a_worker_thread(tmp_path, database_url):
    """On PostgreSQL a read on the loop is cut at the statement timeout, repeated in a
    worker thread (where it may take its time), and reads stay off the loop for a while."""
    import threading

    import anyio

    from studio.api import run_read
    from studio.bootstrap import bootstrap
    from tests.conftest import make_settings

    container = bootstrap(make_settings(tmp_path, database_url, database_loop_read_timeout_ms=100))
    attempts: list[str] = []

    def slow_read() -> float:
        attempts.append(threading.current_thread().name)
        with container.db.read() as conn:
            return conn.exec_driver_sql("SELECT pg_sleep(0.3), 7").all()[0][1]

    async def main() -> float:
        return await run_read(_request_for(container), slow_read)

    loop_thread = threading.current_thread().name
    try:
        assert anyio.run(main) == 7
        assert attempts[0] == loop_thread and attempts[1] != loop_thread and len(attempts) == 2
        assert not container.db.loop_reads_enabled()
        attempts.clear()
        assert anyio.run(main) == 7  # while paused: straight to a worker thread
        assert len(attempts) == 1 and attempts[0] != loop_thread
    finally:
        container.close()


@POSTGRES_ONLY
def test_a_lost_loop_connection_is_replaced_without_failing_the_read(container):
    """The loop's connections skip the per-checkout ping: when one has died (here:
    terminated by the server), the read is repeated in a worker thread, not failed."""
    import anyio

    from studio.api import run_read


    def backend_pid() -> int:
        with container.db.read() as conn:
            return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()

    async def main() -> int:
        return await run_read(_request_for(container), backend_pid)

    loop_pid = anyio.run(main)
    with container.db.write() as uow:
        uow.conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(loop_pid)})")
    assert anyio.run(main) not in (None, loop_pid)
    assert not container.db.loop_reads_enabled()


def test_the_evidence_list_query_is_validated_as_one_model(client, container, world):
    for i in range(3):
        container.evidence.create(world["customer"].principal, world.project_a, EvidenceCreate(title=f"E{i}"))
    base = f"/api/v1/projects/{world.project_a}/evidence"
    auditor = world["auditor"].headers
    for query, field in (("limit=0", "limit"), ("limit=201", "limit"), ("limit=ten", "limit"),
                         ("status=lost", "status"), ("sort=id", "sort"), ("order=up", "order"),
                         ("controlId=" + "x" * 65, "controlId")):
        reply = client.get(f"{base}?{query}", headers=auditor)
        assert reply.status_code == 400, (query, reply.text)
        error = reply.json()["error"]
        assert error["code"] == "invalid_parameter"
        assert [d["field"] for d in error["details"]] == [field], (query, error)
    # unknown parameters are ignored, a repeated one counts by its last value
    assert client.get(f"{base}?colour=blue", headers=auditor).status_code == 200
    repeated = client.get(f"{base}?limit=1&limit=2", headers=auditor).json()["data"]
    assert len(repeated["items"]) == 2 and repeated["nextCursor"] is not None


def test_a_wire_page_of_fields_without_the_sort_column_still_pages(container, world):
    from studio.domains.evidence.repository import EvidenceRepository

    _evidence_rows(container, world, rng_seed=5)
    fields = ("title", "status")
    seen, cursor = [], None
    while True:
        with container.db.read() as conn:
            items, cursor = EvidenceRepository(conn).page_request(
                fields, equal={"project_id": world.project_a}, sort="updated_at", cursor=cursor, limit=5).result(conn)
        assert all(set(item) == {"title", "status"} for item in items)
        seen += items
        if cursor is None:
            break
    assert len(seen) == 23


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_statements_of_one_sqlite_read_share_a_snapshot(container, world):
    """The driver-level statements begin the read's transaction as SQLAlchemy's would: a
    write committed between two of them is not seen by the second (SQLite; PostgreSQL
    reads are READ COMMITTED per statement, documented in docs/architecture.md)."""
    import threading

    from studio.domains.evidence.repository import EvidenceRepository
    from studio.domains.evidence.service import EVIDENCE_FIELDS

    def page(conn) -> list[dict]:
        return EvidenceRepository(conn).page_request(
            EVIDENCE_FIELDS, equal={"project_id": world.project_a}, limit=50).result(conn)[0]

    with container.db.read() as conn:
        before = page(conn)
        writer = threading.Thread(target=container.evidence.create, args=(
            world["customer"].principal, world.project_a, EvidenceCreate(title="Committed meanwhile")))
        writer.start()
        writer.join()
        assert page(conn) == before
    with container.db.read() as conn:
        assert len(page(conn)) == len(before) + 1


@POSTGRES_ONLY
def test_the_kept_psycopg_cursor_survives_a_failed_statement(container):
    """The driver statements reuse one cursor per PostgreSQL connection; a statement that
    fails leaves as a DBAPIError and the next one runs on a fresh cursor."""
    from sqlalchemy.exc import DBAPIError

    from studio.compiled import driver_fetchall

    with container.db.engine.connect() as conn:
        assert driver_fetchall(conn, "SELECT 1", None) == [(1,)]
        kept = conn.connection.info["studio.driver_cursor"]
        assert driver_fetchall(conn, "SELECT 2", None) == [(2,)]
        assert conn.connection.info["studio.driver_cursor"] is kept
        with pytest.raises(DBAPIError):
            driver_fetchall(conn, "SELECT 1 / 0", None)
        assert "studio.driver_cursor" not in conn.connection.info
        conn.rollback()  # the failed statement aborted the transaction
        assert driver_fetchall(conn, "SELECT 3", None) == [(3,)]
