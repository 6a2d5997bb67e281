"""Frameworks and mappings per organization: the shared catalog (super_admin, the CLI) plus
each organization's own imports, which no other organization can see, change or shadow."""

from __future__ import annotations

import uuid

from studio.domains.frameworks.repository import FrameworkControlSource
from tests.conftest import World

API = "/api/v1"
CSV = "\n".join(["ref,title,parent", "AC,Access control,"]
                + [f"AC-{i},Control {i},AC" for i in range(1, 6)]).encode()
SHARED_KEY = "nist-800-53-rev5-moderate"


def _import(client, actor, key, data=CSV, name=None):
    return client.post(f"{API}/frameworks/import", headers=actor.headers,
                       data={"key": key, "name": name or f"Framework {key}"},
                       files={"file": ("f.csv", data, "text/csv")})


def _shared(container, key=SHARED_KEY, data=CSV, name="NIST Moderate"):
    return container.frameworks.import_file(None, "f.csv", data, key=key, name=name)


def test_an_admin_of_b_cannot_change_replace_see_or_shadow_a_s_frameworks_and_mappings(client, container,
                                                                                      world: World):
    a, b = world["admin"], world.outsider
    genuine = _shared(container)
    # B may not shadow the shared key, nor add a version to the shared framework.
    r = _import(client, b, SHARED_KEY, data=CSV + b"\nAC-99,Attacker control,AC", name="NIST Moderate")
    assert r.status_code == 409 and r.json()["error"]["code"] == "duplicate", r.text
    # A's own framework, and A's mapping between two of its controls.
    own = _import(client, a, "a-internal")
    assert own.status_code == 201, own.text
    assert own.json()["data"]["organizationId"] == str(world.org_id)
    controls = client.get(f"{API}/frameworks/a-internal/controls?kind=control",
                          headers=a.headers).json()["data"]["items"]
    mapping = client.post(f"{API}/mappings", headers=a.headers, json={
        "sourceId": controls[0]["id"], "targetId": controls[1]["id"], "relation": "related", "strength": 5})
    assert mapping.status_code == 201, mapping.text
    mapping_id = mapping.json()["data"]["id"]
    assert mapping.json()["data"]["organizationId"] == str(world.org_id)
    # B sees none of it: every read is a 404 (or absent from a list), no existence leak.
    listed = client.get(f"{API}/frameworks", headers=b.headers).json()["data"]
    assert "a-internal" not in [f["key"] for f in listed] and SHARED_KEY in [f["key"] for f in listed]
    for path in ("/frameworks/a-internal", f"/frameworks/{own.json()['data']['frameworkId']}",
                 "/frameworks/a-internal/controls", f"/controls/{controls[0]['id']}",
                 f"/controls/{controls[0]['id']}/neighbourhood"):
        got = client.get(f"{API}{path}", headers=b.headers)
        assert got.status_code == 404, (path, got.text)
    mappings = client.get(f"{API}/mappings", headers=b.headers).json()["data"]["items"]
    assert mapping_id not in [m["id"] for m in mappings]
    assert client.get(f"{API}/mappings?controlId={controls[0]['id']}", headers=b.headers).json()["data"]["items"] == []
    # ... nor change it.
    assert client.patch(f"{API}/mappings/{mapping_id}", headers=b.headers, json={"strength": 1}).status_code == 404
    assert client.delete(f"{API}/mappings/{mapping_id}", headers=b.headers).status_code == 404
    mapped = client.post(f"{API}/mappings", headers=b.headers, json={
        "sourceId": controls[2]["id"], "targetId": controls[3]["id"], "relation": "related", "strength": 5})
    assert mapped.status_code == 404
    csv = f"source_framework,source,target_framework,target,relation,strength\na-internal,AC-1,{SHARED_KEY},AC-1,equal,9\n"
    imported = client.post(f"{API}/mappings/import", headers=b.headers,
                           files={"file": ("m.csv", csv.encode(), "text/csv")})
    assert imported.status_code == 404
    derived = client.post(f"{API}/mappings/derive", headers=b.headers,
                          json={"source": "a-internal", "target": SHARED_KEY})
    assert derived.status_code == 404
    # B importing "a-internal" makes B's own framework; A's is untouched.
    theirs = _import(client, b, "a-internal", data=CSV + b"\nAC-6,B's control,AC")
    assert theirs.status_code == 201 and theirs.json()["data"]["seq"] == 1
    mine = client.get(f"{API}/frameworks/a-internal", headers=a.headers).json()["data"]
    assert mine["id"] == own.json()["data"]["frameworkId"] and len(mine["versions"]) == 1
    assert client.get(f"{API}/mappings/{mapping_id}", headers=a.headers).status_code in (404, 405)
    assert mapping_id in [m["id"] for m in client.get(f"{API}/mappings", headers=a.headers).json()["data"]["items"]]
    # A's new project binds to the genuine shared framework, and cannot bind to B's.
    project = client.post(f"{API}/projects", headers=a.headers, json={"name": "New", "framework": SHARED_KEY})
    assert project.status_code == 201, project.text
    assert project.json()["data"]["frameworkVersionId"] == genuine["versionId"]
    by_name = client.post(f"{API}/projects", headers=a.headers, json={"name": "By name", "framework": "NIST Moderate"})
    assert by_name.json()["data"]["frameworkVersionId"] == genuine["versionId"]
    b_only = _import(client, b, "b-only")
    assert b_only.status_code == 201
    refused = client.post(f"{API}/projects", headers=a.headers, json={"name": "Foreign", "framework": "b-only"})
    assert refused.status_code == 404
    assert refused.json()["error"]["details"][0]["field"] == "framework"
    # ... nor move a project onto B's version.
    moved = client.put(f"{API}/projects/{world.project_a}/framework-version", headers=a.headers,
                       json={"frameworkVersionId": b_only.json()["data"]["versionId"]})
    assert moved.status_code == 404


def test_only_super_admin_changes_the_shared_catalog(client, container, world: World):
    _shared(container)
    admin, root = world["admin"], world["super_admin"]
    shared = client.get(f"{API}/frameworks/{SHARED_KEY}/controls?kind=control", headers=admin.headers).json()
    ids = [c["id"] for c in shared["data"]["items"]]
    made = client.post(f"{API}/mappings", headers=root.headers, json={
        "sourceId": ids[0], "targetId": ids[1], "relation": "equal", "strength": 9})
    assert made.status_code == 201 and made.json()["data"]["organizationId"] is None
    shared_mapping = made.json()["data"]["id"]
    # Every organization sees the shared mapping; only super_admin changes it.
    assert shared_mapping in [m["id"] for m in client.get(f"{API}/mappings", headers=world.outsider.headers)
                              .json()["data"]["items"]]
    assert client.patch(f"{API}/mappings/{shared_mapping}", headers=admin.headers,
                        json={"strength": 1}).status_code == 403
    assert client.delete(f"{API}/mappings/{shared_mapping}", headers=world.outsider.headers).status_code == 403
    assert client.patch(f"{API}/mappings/{shared_mapping}", headers=root.headers,
                        json={"strength": 8}).status_code == 200
    # An admin's mapping between shared controls is their organization's own.
    own = client.post(f"{API}/mappings", headers=admin.headers, json={
        "sourceId": ids[2], "targetId": ids[3], "relation": "related", "strength": 4})
    assert own.json()["data"]["organizationId"] == str(world.org_id)
    assert own.json()["data"]["id"] not in [m["id"] for m in client.get(
        f"{API}/mappings", headers=world.outsider.headers).json()["data"]["items"]]
    # super_admin's import goes to the shared catalog; a key an organization uses is refused.
    r = _import(client, root, "root-shared")
    assert r.status_code == 201 and r.json()["data"]["organizationId"] is None
    assert _import(client, world.outsider, "two-own").status_code == 201
    clash = _import(client, root, "two-own")
    assert clash.status_code == 409


def test_an_unknown_framework_on_project_creation_is_a_404_naming_the_field(client, world: World):
    r = client.post(f"{API}/projects", headers=world["admin"].headers,
                    json={"name": "Nothing", "framework": "no-such-framework"})
    assert r.status_code == 404, r.text
    error = r.json()["error"]
    assert error["code"] == "not_found" and error["details"][0]["field"] == "framework"
    renamed = client.patch(f"{API}/projects/{world.project_a}", headers=world["admin"].headers,
                           json={"framework": "no-such-framework"})
    assert renamed.status_code == 404 and renamed.json()["error"]["details"][0]["field"] == "framework"
    unknown = client.put(f"{API}/projects/{world.project_a}/framework-version", headers=world["admin"].headers,
                         json={"frameworkVersionId": str(uuid.uuid4())})
    assert unknown.status_code == 404


def test_the_ai_reads_only_frameworks_the_organization_sees(container, world: World):
    _shared(container)
    container.frameworks.import_file(None, "f.csv", CSV, key="one-own", name="One", organization_id=world.org_id)
    container.frameworks.import_file(None, "f.csv", CSV, key="one-own", name="Two",
                                     organization_id=world.other_org_id)
    with container.db.read() as conn:
        source = FrameworkControlSource(conn)
        one, two, shared = source.frameworks(world.org_id), source.frameworks(world.other_org_id), source.frameworks(None)
        everything = source.frameworks()
        assert SHARED_KEY in one and SHARED_KEY in two and SHARED_KEY in shared
        [one_name] = [n for n in one if n.startswith("one-own@")]
        [two_name] = [n for n in two if n.startswith("one-own@")]
        assert one_name != two_name and two_name not in one and one_name not in two
        assert not any(n.startswith("one-own") for n in shared)
        assert {one_name, two_name} <= set(everything)
        assert source.controls(one_name) and source.controls(SHARED_KEY)
        assert source.name_for("one-own", world.org_id) == one_name
        assert source.name_for("one-own", None) is None


def test_migration_0007_assigns_owners_from_the_import_events(tmp_path):
    """Existing frameworks and mappings become shared, except an organization admin's own
    import that no other organization depends on; every project keeps its binding."""
    from sqlalchemy import insert, select, text

    from studio.db.engine import Database, make_engine, utcnow
    from studio.db.migrate import upgrade
    from studio.domains.frameworks.models import (
        control_mappings,
        controls,
        framework_versions,
        frameworks,
    )
    from studio.domains.projects.models import projects
    from studio.domains.users.models import organizations, users
    from studio.events.store import EventStore

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0006")
    now = utcnow()
    one, two = uuid.uuid4(), uuid.uuid4()
    admin_one, admin_two, root = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    fws = {name: uuid.uuid4() for name in ("mine", "shared-use", "cli", "root")}
    versions = {name: uuid.uuid4() for name in fws}
    ctl = {name: (uuid.uuid4(), uuid.uuid4()) for name in fws}
    with engine.begin() as conn:
        conn.execute(insert(organizations), [{"id": one, "name": "One", "created_at": now},
                                             {"id": two, "name": "Two", "created_at": now}])
        conn.execute(insert(users), [
            {"id": uid, "organization_id": org, "email": f"{uid.hex}@x.example", "name": "u", "role": role,
             "password_hash": "x", "is_active": True, "created_at": now, "updated_at": now, "version": 1}
            for uid, org, role in ((admin_one, one, "admin"), (admin_two, two, "admin"), (root, one, "super_admin"))])
        for name, fid in fws.items():
            conn.execute(insert(frameworks).values(id=fid, key=name, name=name, description="", created_at=now,
                                                   updated_at=now))
            conn.execute(insert(framework_versions).values(
                id=versions[name], framework_id=fid, seq=1, version="1", source_format="csv", source_digest="x",
                control_count=2, imported_by=None, imported_at=now))
            for i, cid in enumerate(ctl[name]):
                conn.execute(insert(controls).values(id=cid, version_id=versions[name], ref=f"c-{i}", label=f"C-{i}",
                                                     kind="control", title="t", sort=i))
        conn.execute(insert(projects).values(
            id=uuid.uuid4(), organization_id=two, name="Two's", description="", framework="shared-use",
            status="active", compliance_score=0.0, created_at=now, updated_at=now, version=1,
            framework_version_id=versions["shared-use"]))

        def mapping(a, b, by):
            conn.execute(insert(control_mappings).values(id=uuid.uuid4(), source_id=a, target_id=b, relation="related",
                                                         strength=5, origin="manual", note="", created_by=by,
                                                         created_at=now))

        mapping(ctl["cli"][0], ctl["cli"][1], admin_one)  # an admin's mapping of shared controls: theirs
        mapping(ctl["cli"][1], ctl["cli"][0], None)  # derived: shared
        mapping(ctl["mine"][0], ctl["cli"][0], None)  # touches one's own framework: one's
        mapping(ctl["root"][0], ctl["cli"][0], root)  # super_admin's: shared
    db = Database(url, EventStore())
    # Today's store files each stream under its owner (0008), read from the framework's row
    # (0007): give the old schema those columns while writing, then take them away again.
    columns = (("event_streams", "organization_id VARCHAR(64)"), ("frameworks", "organization_id CHAR(32)"))
    with db.write() as uow:
        for table, column in columns:
            uow.conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column}"))
    for name, actor, org in (("mine", admin_one, one), ("shared-use", admin_one, one), ("cli", "cli", None),
                             ("root", root, one)):
        context = {"actor": str(actor)} | ({"organization": str(org)} if org else {})
        with db.write(**context) as uow:
            uow.emit("framework.imported", f"framework:{fws[name]}", {"frameworkId": str(fws[name]), "key": name})
    with db.write() as uow:
        for table, column in columns:
            uow.conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column.split()[0]}"))
    db.dispose()

    upgrade(engine)
    with engine.connect() as conn:
        owners = {key: org for key, org in conn.execute(select(frameworks.c.key, frameworks.c.organization_id))}
        assert owners == {"mine": one, "shared-use": None, "cli": None, "root": None}
        mapped = {(a, b): org for a, b, org in conn.execute(
            select(control_mappings.c.source_id, control_mappings.c.target_id, control_mappings.c.organization_id))}
        assert mapped == {(ctl["cli"][0], ctl["cli"][1]): one, (ctl["cli"][1], ctl["cli"][0]): None,
                          (ctl["mine"][0], ctl["cli"][0]): one, (ctl["root"][0], ctl["cli"][0]): None}
        bound = conn.execute(select(projects.c.framework_version_id)).scalar_one()
        assert bound == versions["shared-use"]
    engine.dispose()
