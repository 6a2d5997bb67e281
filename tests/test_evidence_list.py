"""The evidence list: keyset pages in every order and filter, foreign projects hidden, bad
cursors and parameters refused; tokens' verification cache; the one timestamp form."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from studio.domains.auth.security import AccessTokens
from studio.domains.evidence.schemas import EvidenceCreate
from studio.errors import AppError
from studio.events.envelope import iso_utc
from studio.records import json_value
from tests.timing_support import FakeClock


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


def _tokens(**options) -> AccessTokens:
    return AccessTokens("k" * 64, audience="studio-api", issuer="studio-platform", ttl_seconds=900,
                        **options)


def test_a_cached_access_token_still_expires():
    clock = FakeClock()
    tokens = _tokens(clock=clock)
    issued = dt.datetime.fromtimestamp(clock(), dt.UTC)
    token, _ = tokens.issue(uuid.uuid4(), uuid.uuid4(), now=issued, ttl=dt.timedelta(seconds=60))
    expires_at = tokens.verify(token).expires_at.timestamp()  # decoded (system clock), cached
    clock.now = expires_at + tokens.LEEWAY_SECONDS - 0.5
    assert tokens.verify(token).expires_at.timestamp() == expires_at  # from the cache, in leeway
    clock.now = expires_at + tokens.LEEWAY_SECONDS
    # Still a minute from expiry by the system clock: only the cache's re-check can refuse it.
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
    assert json_value(moment) == iso_utc(moment)



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




@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_reads_nested_in_one_read_share_its_snapshot(container, world):
    """A service read inside another read (the same thread) uses the outer connection: a
    write committed between two of its statements is not seen by the second (SQLite;
    PostgreSQL reads are READ COMMITTED per statement, docs/architecture.md)."""
    import threading

    def page() -> list[dict]:
        return container.evidence.list_for_project(
            world["auditor"].principal, world.project_a, cursor=None, limit=50,
            sort="created_at", desc=True)[0]

    with container.db.read():
        before = page()
        writer = threading.Thread(target=container.evidence.create, args=(
            world["customer"].principal, world.project_a, EvidenceCreate(title="Committed meanwhile")))
        writer.start()
        writer.join()
        assert page() == before
    assert len(page()) == len(before) + 1
