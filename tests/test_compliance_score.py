"""The compliance score: a projection of events that always equals a full recompute, rebuilds
identically on replay, explains itself per control, and answers for past dates."""

from __future__ import annotations

import datetime as dt
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from studio.domains.compliance.models import compliance_controls
from studio.domains.compliance.projection import read_score, score_from_projection
from studio.domains.compliance.scoring import Coverage, ScoreFold
from studio.domains.compliance.service import full_recompute
from studio.domains.evidence.schemas import EvidenceCreate, EvidenceUpdate, ReviewCreate
from studio.domains.projects.schemas import MemberAdd, ProjectCreate
from studio.errors import AppError
from studio.permissions import ProjectRole
from tests.frameworks_support import (
    LOW,
    MODERATE,
    XML_SUBSET,
    ProjectionDriver,
    import_file,
    project_score,
)

API = "/api/v1"
TODAY = dt.datetime.now(dt.UTC).date()
REFS = ["ac-1", "ac-2", "ac-2.1", "ac-2.1.1"]
PRIMARY = [None, "AC-1", "ac-2", "AC-2(1)", "AC-2(1)(a)", "AC-3", "ZZ-9"]


def second_version() -> bytes:
    """The XML subset, re-issued: AC-2(1)(a) withdrawn, AC-3 added."""
    xml = XML_SUBSET.read_text()
    start = xml.index('<control id="ac-2.1.1"')
    end = xml.index("</control>", start) + len("</control>")
    xml = xml[:start] + xml[end:]
    xml = xml.replace("<version>5.1.1-xml</version>", "<version>5.1.2-xml</version>")
    xml = xml.replace("  </group>", '    <control id="ac-3"><title>Access Enforcement</title>'
                      '<prop name="label" value="AC-3"/></control>\n  </group>')
    return xml.encode()
EXPIRY = [None, TODAY - dt.timedelta(days=3), TODAY, TODAY + dt.timedelta(days=30)]


def new_project(c, world, version_id, name=None):
    admin = world["admin"].principal
    project = c.projects.create(admin, ProjectCreate(name=name or f"P {uuid.uuid4().hex[:8]}", framework="SOC 2"))
    pid = uuid.UUID(project["id"])
    c.projects.add_member(admin, pid, MemberAdd(userId=world["customer"].user_id, role=ProjectRole.CUSTOMER))
    c.projects.add_member(admin, pid, MemberAdd(userId=world["auditor"].user_id, role=ProjectRole.AUDITOR))
    c.projects.add_member(admin, pid, MemberAdd(userId=world["viewer"].user_id, role=ProjectRole.VIEWER))
    c.compliance.move_version(admin, pid, uuid.UUID(version_id))
    return pid


def approve(c, world, evidence_id):
    c.evidence.submit(world["customer"].principal, evidence_id)
    c.evidence.review(world["auditor"].principal, evidence_id, ReviewCreate(decision="approved"))


def projected_coverage(c, pid):
    with c.db.read() as conn:
        return {r.control_ref: Coverage(r.approved, r.open_ended, r.max_expiry)
                for r in conn.execute(select(compliance_controls).where(compliance_controls.c.project_id == pid))}


def folded_score(c, pid):
    fold = ScoreFold()
    with c.db.read() as conn:
        for ev in c.store.read(conn, after=0, limit=100000, stream=f"project:{pid}"):
            fold.apply(ev.type, ev.data)
        from studio.domains.compliance.scoring import score
        from studio.domains.frameworks.repository import FrameworkRepository

        weights = FrameworkRepository(conn).weights(uuid.UUID(fold.version_id))
    return score(weights, fold.coverage(), set(fold.not_applicable), TODAY)


OPS = st.lists(st.one_of(
    st.tuples(st.just("create"), st.sampled_from(PRIMARY), st.sampled_from(EXPIRY)),
    st.tuples(st.just("link"), st.integers(0, 5), st.sets(st.sampled_from([*REFS, "ac-3"]), max_size=3)),
    st.tuples(st.just("approve"), st.integers(0, 5)),
    st.tuples(st.just("reject"), st.integers(0, 5)),
    st.tuples(st.just("expiry"), st.integers(0, 5), st.sampled_from(EXPIRY)),
    st.tuples(st.just("delete"), st.integers(0, 5)),
    st.tuples(st.just("na"), st.sampled_from([*REFS, "ac-3"]), st.booleans()),
    st.tuples(st.just("move"), st.integers(0, 1)),
), min_size=1, max_size=14)


def run_op(c, world, pid, evidence, op, versions=()):
    customer, auditor, admin = world["customer"].principal, world["auditor"].principal, world["admin"].principal
    kind = op[0]
    try:
        if kind == "create":
            row = c.evidence.create(customer, pid, EvidenceCreate(title="e", controlId=op[1], expiresAt=op[2]))
            evidence.append(uuid.UUID(row["id"]))
            return
        if kind == "na":
            c.compliance.set_applicability(admin, pid, op[1], op[2], "" if op[2] else "out of scope")
            return
        if kind == "move":
            c.compliance.move_version(admin, pid, uuid.UUID(versions[op[1]]))
            return
        if not evidence:
            return
        eid = evidence[op[1] % len(evidence)]
        if kind == "link":
            c.compliance.link_controls(customer, eid, sorted(op[2]))
        elif kind == "approve":
            approve(c, world, eid)
        elif kind == "reject":
            c.evidence.submit(customer, eid)
            c.evidence.review(auditor, eid, ReviewCreate(decision="rejected", comment="not enough"))
        elif kind == "expiry":
            c.evidence.update(customer, eid, EvidenceUpdate(expiresAt=op[2]), expected_version=None)
        elif kind == "delete":
            c.evidence.delete(admin, eid)
            evidence.remove(eid)
    except AppError as exc:
        # Workflow refusals (approve twice, edit approved evidence) are part of the random walk.
        # A control the current version lacks is refused too (400 on links, 404 on scope).
        assert exc.status in (400, 403, 404, 409), exc.message


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(ops=OPS)
def test_incremental_projection_equals_full_recompute_and_replay(container, world, ops):
    c = container
    versions = getattr(container, "_xml_versions", None)
    if versions is None:
        first = import_file(c, XML_SUBSET, key="subset")["versionId"]
        second = c.frameworks.import_file(None, "subset-v2.xml", second_version(), key="subset")["versionId"]
        versions = container._xml_versions = (first, second)
    pid = new_project(c, world, versions[0])
    driver = ProjectionDriver(c)
    evidence: list[uuid.UUID] = []
    for op in ops:
        run_op(c, world, pid, evidence, op, versions)
        driver.drain()  # incremental: after every step
    with c.db.read() as conn:
        truth = full_recompute(conn, pid, TODAY)
        live = score_from_projection(conn, pid, TODAY)
    assert live["score"] == truth["score"] == project_score(c, pid) == folded_score(c, pid)
    assert projected_coverage(c, pid) == {k: v for k, v in truth["coverage"].items()}
    tomorrow = TODAY + dt.timedelta(days=1)
    with c.db.read() as conn:
        # The stored score must not outlive evidence that expires today.
        assert read_score(conn, pid, tomorrow)["score"] == full_recompute(conn, pid, tomorrow)["score"]
        assert read_score(conn, pid, TODAY) == live
    driver.replay()
    with c.db.read() as conn:
        assert score_from_projection(conn, pid, TODAY) == live
    assert project_score(c, pid) == truth["score"]


def test_statuses_explain_the_score_per_control(client, container, world):
    c = container
    version = import_file(c, XML_SUBSET)["versionId"]
    pid = new_project(c, world, version, name="Scored")
    driver = ProjectionDriver(c)
    customer = world["customer"].principal
    fresh = uuid.UUID(c.evidence.create(customer, pid, EvidenceCreate(title="policy", controlId="AC-1"))["id"])
    old = uuid.UUID(c.evidence.create(customer, pid, EvidenceCreate(
        title="old review", controlId="AC-2", expiresAt=TODAY - dt.timedelta(days=1)))["id"])
    approve(c, world, fresh)
    approve(c, world, old)
    r = client.put(f"{API}/projects/{pid}/controls/AC-2(1)(a)/applicability", headers=world["admin"].headers,
                   json={"applicable": False})
    assert r.status_code == 400  # a reason is required
    r = client.put(f"{API}/projects/{pid}/controls/AC-2(1)(a)/applicability", headers=world["customer"].headers,
                   json={"applicable": False, "reason": "no"})
    assert r.status_code == 403  # customers do not decide the scope
    r = client.put(f"{API}/projects/{pid}/controls/ac-2.1.1/applicability", headers=world["admin"].headers,
                   json={"applicable": False, "reason": "no deeper automation in scope"})
    assert r.status_code == 200, r.text
    driver.drain()
    statuses = {s["ref"]: s for s in client.get(f"{API}/projects/{pid}/controls",
                                                headers=world["viewer"].headers).json()["data"]}
    assert {k: v["status"] for k, v in statuses.items()} == {
        "ac-1": "covered", "ac-2": "expired", "ac-2.1": "missing", "ac-2.1.1": "not_applicable"}
    assert statuses["ac-2.1.1"]["reason"] == "no deeper automation in scope"
    score = client.get(f"{API}/projects/{pid}/score", headers=world["viewer"].headers).json()["data"]
    # weights: ac-1 = 1, ac-2 = 3, ac-2.1 = 1 (ac-2.1.1 not applicable) -> 1 / 5
    assert score["score"] == 20.0 and score["counts"] == {"covered": 1, "expired": 1, "missing": 1,
                                                          "not_applicable": 1}
    assert project_score(c, pid) == 20.0
    renewals = client.get(f"{API}/projects/{pid}/renewals", headers=world["viewer"].headers).json()["data"]
    assert [(r["evidenceId"], r["expired"]) for r in renewals] == [(str(old), True)]
    # Linking the fresh evidence to AC-2 too covers it again.
    r = client.put(f"{API}/evidence/{fresh}/controls", headers=world["customer"].headers,
                   json={"controlRefs": ["AC-2", "nope-1"]})
    assert r.status_code == 404 and r.json()["error"]["details"][0]["field"] == "controlRefs.1"
    r = client.put(f"{API}/evidence/{fresh}/controls", headers=world["customer"].headers, json={"controlRefs": ["AC-2"]})
    assert r.json()["data"]["controls"] == ["ac-1", "ac-2"]
    driver.drain()
    assert client.get(f"{API}/projects/{pid}/score", headers=world["viewer"].headers).json()["data"]["score"] == 80.0


def test_score_as_of_a_past_date_folds_the_events_up_to_it(client, container, world):
    c = container
    version = import_file(c, XML_SUBSET)["versionId"]
    pid = new_project(c, world, version, name="History")
    eid = uuid.UUID(c.evidence.create(world["customer"].principal, pid, EvidenceCreate(
        title="x", controlId="AC-2"))["id"])
    approve(c, world, eid)
    ProjectionDriver(c).drain()
    # Shift this project's events back two days, as if they had happened then.
    from sqlalchemy import update

    from studio.events.models import events

    with c.db.write() as uow:
        uow.conn.execute(update(events).where(events.c.stream == f"project:{pid}")
                         .values(timestamp=dt.datetime.now(dt.UTC) - dt.timedelta(days=2)))
    ago = lambda d: (TODAY - dt.timedelta(days=d)).isoformat()  # noqa: E731
    get = lambda d: client.get(f"{API}/projects/{pid}/score?at={ago(d)}",  # noqa: E731
                               headers=world["viewer"].headers).json()["data"]
    assert get(3)["score"] == 0.0  # before the evidence existed
    assert get(1)["score"] == 50.0  # ac-2 weighs 3 of 6
    assert get(1)["source"] == "events"


def test_evidence_coverage_and_cross_framework_coverage(client, container, world):
    c = container
    low = import_file(c, LOW, key="low")["versionId"]
    moderate = import_file(c, MODERATE, key="moderate")["versionId"]
    c.frameworks.derive_equal(None, "low", "moderate")
    low_project = new_project(c, world, low, name="Low project")
    mod_project = new_project(c, world, moderate, name="Moderate project")
    eid = uuid.UUID(c.evidence.create(world["customer"].principal, low_project,
                                      EvidenceCreate(title="account list", controlId="AC-2"))["id"])
    c.compliance.link_controls(world["customer"].principal, eid, ["AC-3"])
    approve(c, world, eid)
    ProjectionDriver(c).drain()
    coverage = client.get(f"{API}/evidence/{eid}/coverage", headers=world["viewer"].headers).json()["data"]
    direct = {x["ref"] for x in coverage["controls"] if x["direct"]}
    via = {(x["ref"], x["framework"].split()[-3], x["path"][0]["relation"]) for x in coverage["controls"] if not x["direct"]}
    assert direct == {"ac-2", "ac-3"}
    assert ("ac-2", "MODERATE", "equal") in via and ("ac-3", "MODERATE", "equal") in via
    mapped = client.get(f"{API}/projects/{mod_project}/mapped-coverage?sourceProjectId={low_project}",
                        headers=world["viewer"].headers).json()["data"]
    assert {m["ref"]: [s["ref"] for s in m["sources"]] for m in mapped} == {"ac-2": ["ac-2"], "ac-3": ["ac-3"]}
    one = next(m["controlId"] for m in mapped if m["ref"] == "ac-3")
    only = client.get(f"{API}/projects/{mod_project}/mapped-coverage?controlId={one}",
                      headers=world["viewer"].headers).json()["data"]
    assert [(m["ref"], m["sources"][0]["project"]) for m in only] == [("ac-3", "Low project")]
    statuses = {s["ref"]: s for s in client.get(f"{API}/projects/{mod_project}/controls",
                                                headers=world["viewer"].headers).json()["data"]}
    assert statuses["ac-2"]["status"] == "partial" and statuses["ac-2"]["mappedFrom"][0]["project"] == "Low project"
    assert statuses["ac-1"]["status"] == "missing"


def test_a_new_project_starts_on_the_latest_version_of_the_framework_it_names(client, container, world):
    c = container
    first = import_file(c, XML_SUBSET, key="subset")
    pid = uuid.UUID(c.projects.create(world["admin"].principal, ProjectCreate(name="Named", framework="subset"))["id"])
    with c.db.read() as conn:
        from studio.domains.projects.models import projects

        got = conn.execute(select(projects.c.framework_version_id).where(projects.c.id == pid)).scalar()
    assert str(got) == first["versionId"]
    c.projects.add_member(world["admin"].principal, pid, MemberAdd(userId=world["auditor"].user_id,
                                                                   role=ProjectRole.AUDITOR))
    eid = uuid.UUID(c.evidence.create(world["admin"].principal, pid, EvidenceCreate(title="x", controlId="AC-1"))["id"])
    c.evidence.submit(world["admin"].principal, eid)
    c.evidence.review(world["auditor"].principal, eid, ReviewCreate(decision="approved"))
    ProjectionDriver(c).drain()
    assert project_score(c, pid) == round(100 / 6, 2)


def test_moving_version_rescopes_evidence_whose_primary_only_one_version_has(container, world):
    c = container
    first = import_file(c, XML_SUBSET, key="subset")["versionId"]
    second = c.frameworks.import_file(None, "subset-v2.xml", second_version(), key="subset")["versionId"]
    pid = new_project(c, world, first, name="Moving")
    driver = ProjectionDriver(c)
    eid = uuid.UUID(c.evidence.create(world["customer"].principal, pid, EvidenceCreate(
        title="enforcement", controlId="AC-3"))["id"])
    approve(c, world, eid)
    driver.drain()
    assert project_score(c, pid) == 0.0  # AC-3 is not in the first version
    c.compliance.move_version(world["admin"].principal, pid, uuid.UUID(second))
    driver.drain()
    with c.db.read() as conn:
        truth = full_recompute(conn, pid, TODAY)["score"]
    assert truth == project_score(c, pid) == folded_score(c, pid) == round(100 / 6, 2)  # ac-1, ac-2 (3), ac-2.1, ac-3
