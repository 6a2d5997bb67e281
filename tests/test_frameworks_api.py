"""Framework import, browse, search, mappings and graph queries through the API (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from studio.domains.frameworks.models import control_mappings, controls, frameworks
from tests.conftest import SEED_FRAMEWORKS
from tests.frameworks_support import BASIC_JSON, LOW, MODERATE, XML_SUBSET, import_file

API = "/api/v1"


def _upload(client, actor, path, data=None, **form):
    return client.post(f"{API}/frameworks/import", headers=actor.headers, data=form,
                       files={"file": (path.name, data if data is not None else path.read_bytes())})


def _count(container, table):
    with container.db.read() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_admin_imports_moderate_and_browses_and_searches(client, world, container):
    r = _upload(client, world["admin"], MODERATE, key="nist-moderate")
    assert r.status_code == 201, r.text
    result = r.json()["data"]
    assert result["controls"] == 287 and result["seq"] == 1
    listed = client.get(f"{API}/frameworks", headers=world["viewer"].headers).json()["data"]
    assert [f["key"] for f in listed if f["key"] not in SEED_FRAMEWORKS] == ["nist-moderate"]
    page1 = client.get(f"{API}/frameworks/nist-moderate/controls?limit=5&kind=control",
                       headers=world["viewer"].headers).json()["data"]
    assert [c["label"] for c in page1["items"]] == ["AC-1", "AC-2", "AC-2(1)", "AC-2(2)", "AC-2(3)"]
    page2 = client.get(f"{API}/frameworks/nist-moderate/controls?limit=5&kind=control&cursor={page1['nextCursor']}",
                       headers=world["viewer"].headers).json()["data"]
    assert page2["items"][0]["label"] == "AC-2(4)"
    found = client.get(f"{API}/frameworks/nist-moderate/controls?q=inactivity%20logout",
                       headers=world["viewer"].headers).json()["data"]["items"]
    assert "AC-2(5)" in [c["label"] for c in found]
    detail = client.get(f"{API}/controls/{page1['items'][1]['id']}", headers=world["viewer"].headers).json()["data"]
    assert "[Assignment: prerequisites and criteria]" in detail["statement"]


def test_only_admins_import(client, world, container):
    r = _upload(client, world["manager"], BASIC_JSON)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert _count(container, frameworks) == len(SEED_FRAMEWORKS)


def test_a_bad_file_reports_every_problem_and_changes_nothing(client, world, container):
    bad = json.dumps({"catalog": {"metadata": {"title": "T"}, "controls": [
        {"id": "x-1", "title": "ok"}, {"id": "x-1", "title": "dup"}, {"id": "x 2"}]}}).encode()
    r = _upload(client, world["admin"], BASIC_JSON, data=bad)
    assert r.status_code == 400
    details = r.json()["error"]["details"]
    assert {d["location"] for d in details} == {"/catalog/controls/1/id", "/catalog/controls/2/id",
                                                "/catalog/controls/2/title"}
    assert _count(container, frameworks) == len(SEED_FRAMEWORKS) and _count(container, controls) == len(SEED_FRAMEWORKS)


def test_reimport_creates_a_version_reports_the_diff_and_projects_keep_theirs(client, world, container):
    first = _upload(client, world["admin"], BASIC_JSON, key="basic").json()["data"]
    again = _upload(client, world["admin"], BASIC_JSON, key="basic")
    assert again.status_code == 200 and again.json()["data"]["unchanged"] is True
    doc = json.loads(BASIC_JSON.read_bytes())
    catalog = doc["catalog"]
    catalog["metadata"]["version"] = "1.2"
    internal = catalog["groups"][0]["groups"][0]
    internal["controls"][0]["title"] = "Roles and responsibilities (reworded)"
    removed = internal["controls"].pop(1)["id"]
    internal["controls"].append({"id": "s1.1.9", "title": "A new control"})
    r = client.put(f"{API}/projects/{world.project_a}/framework-version", headers=world["admin"].headers,
                   json={"frameworkVersionId": first["versionId"]})
    assert r.status_code == 200, r.text
    second = _upload(client, world["admin"], BASIC_JSON, data=json.dumps(doc).encode(), key="basic").json()["data"]
    assert (second["seq"], second["version"]) == (2, "1.2")
    assert second["added"] == ["s1.1.9"] and second["removed"] == [removed] and second["changed"] == ["s1.1.1"]
    project = client.get(f"{API}/projects/{world.project_a}", headers=world["admin"].headers)
    assert project.json()["data"]["frameworkVersionId"] == first["versionId"]  # kept after the re-import
    statuses = client.get(f"{API}/projects/{world.project_a}/controls", headers=world["admin"].headers).json()["data"]
    assert removed in [s["ref"] for s in statuses]  # still on version 1
    manager_move = client.put(f"{API}/projects/{world.project_a}/framework-version", headers=world["manager"].headers,
                              json={"frameworkVersionId": second["versionId"]})
    assert manager_move.status_code == 403
    client.put(f"{API}/projects/{world.project_a}/framework-version", headers=world["admin"].headers,
               json={"frameworkVersionId": second["versionId"]})
    statuses = client.get(f"{API}/projects/{world.project_a}/controls", headers=world["admin"].headers).json()["data"]
    assert removed not in [s["ref"] for s in statuses] and "s1.1.9" in [s["ref"] for s in statuses]


def test_xml_and_custom_csv_import_through_the_api(client, world):
    r = _upload(client, world["admin"], XML_SUBSET)
    assert r.status_code == 201 and r.json()["data"]["controls"] == 4
    csv_data = b"ref,title,parent,weight\nCC1,Control environment,,\nCC1.1,Integrity,CC1,2\n"
    r = client.post(f"{API}/frameworks/import", headers=world["admin"].headers,
                    data={"name": "SOC 2 (ours)", "version": "2017"}, files={"file": ("soc2.csv", csv_data)})
    assert r.status_code == 201 and r.json()["data"]["key"] == "soc-2-ours"


def test_mappings_crud_csv_and_derived_baseline(client, world, container):
    import_file(container, LOW, key="low")
    import_file(container, MODERATE, key="moderate")
    derived = client.post(f"{API}/mappings/derive", headers=world["admin"].headers,
                          json={"source": "low", "target": "moderate"}).json()["data"]
    assert derived["created"] == 149
    again = client.post(f"{API}/mappings/derive", headers=world["admin"].headers,
                        json={"source": "low", "target": "moderate"}).json()["data"]
    assert again == {**derived, "created": 0, "skipped": 149}
    ids = {}
    for key, label in (("low", "AC-2"), ("moderate", "AC-2(1)"), ("moderate", "AC-3")):
        items = client.get(f"{API}/frameworks/{key}/controls?q={label.lower()}&limit=200",
                           headers=world["viewer"].headers).json()["data"]["items"]
        ids[(key, label)] = next(i["id"] for i in items if i["label"] == label)
    body = {"sourceId": ids[("low", "AC-2")], "targetId": ids[("moderate", "AC-2(1)")], "relation": "subset",
            "strength": 6}
    r = client.post(f"{API}/mappings", headers=world["admin"].headers, json=body)
    assert r.status_code == 201 and r.json()["data"]["origin"] == "manual"
    mapping_id = r.json()["data"]["id"]
    assert client.post(f"{API}/mappings", headers=world["admin"].headers, json=body).status_code == 409
    assert client.post(f"{API}/mappings", headers=world["manager"].headers, json=body).status_code == 403
    assert client.post(f"{API}/mappings", headers=world["admin"].headers,
                       json={**body, "strength": 11}).status_code == 400
    r = client.patch(f"{API}/mappings/{mapping_id}", headers=world["admin"].headers, json={"strength": 8})
    assert r.json()["data"]["strength"] == 8
    hood = client.get(f"{API}/controls/{ids[('low', 'AC-2')]}/neighbourhood", headers=world["viewer"].headers).json()["data"]
    assert hood["parent"]["ref"] == "ac"
    assert hood["children"] == []  # the LOW baseline has no AC-2 enhancements
    assert "ac-3" in [c["ref"] for c in hood["related"]]
    mapped = {(m["ref"], m["relation"], m["origin"]) for m in hood["mapped"]}
    assert ("ac-2", "equal", "derived") in mapped and ("ac-2.1", "subset", "manual") in mapped
    moderate_ac2 = next(m["id"] for m in hood["mapped"] if m["relation"] == "equal")
    hood = client.get(f"{API}/controls/{moderate_ac2}/neighbourhood", headers=world["viewer"].headers).json()["data"]
    assert {"ac-2.1", "ac-2.2", "ac-2.3", "ac-2.4"} <= {c["ref"] for c in hood["children"]}
    # CSV: one bad line -> nothing written
    before = _count(container, control_mappings)
    bad = (b"source_framework,source,target_framework,target,relation,strength\n"
           b"low,AC-3,moderate,AC-2(1),related,3\n"
           b"low,AC-99,moderate,AC-2,equal,12\n")
    r = client.post(f"{API}/mappings/import", headers=world["admin"].headers, files={"file": ("m.csv", bad)})
    assert r.status_code == 400
    locations = [d["location"] for d in r.json()["error"]["details"]]
    assert locations == ["line 3", "line 3"]
    assert _count(container, control_mappings) == before
    good = bad.splitlines()[0] + b"\n" + bad.splitlines()[1] + b"\n"
    r = client.post(f"{API}/mappings/import", headers=world["admin"].headers, files={"file": ("m.csv", good)})
    assert r.json()["data"] == {"created": 1, "skipped": 0}
    assert client.delete(f"{API}/mappings/{mapping_id}", headers=world["admin"].headers).status_code == 200
    assert client.delete(f"{API}/mappings/{mapping_id}", headers=world["admin"].headers).status_code == 404


def test_uploads_follow_the_openapi_document(client, world):
    """The custom format as JSON imports; what the schema refuses is refused, with the reason."""
    admin = world["admin"].headers
    document = {"framework": {"name": "Our controls", "version": "2"},
                "controls": [{"ref": "OC1", "title": "Governance",
                              "controls": [{"ref": "OC1.1", "title": "Policy", "weight": 0}]}]}
    part = ("file", json.dumps(document).encode(), "application/json")
    r = client.post(f"{API}/frameworks/import", headers=admin, files={"file": part})
    assert r.status_code == 201, r.text
    assert r.json()["data"]["sourceFormat"] == "custom-json" and r.json()["data"]["key"] == "our-controls"
    unknown_type = client.post(f"{API}/frameworks/import", headers=admin, files={"file": ("file", b"auth")})
    assert unknown_type.status_code == 415 and unknown_type.json()["error"]["details"][0]["field"] == "file"
    extra = client.post(f"{API}/frameworks/import", headers=admin, files={"file": part}, data={"colour": "red"})
    assert extra.status_code == 400 and extra.json()["error"]["details"][0]["field"] == "colour"
    duplicate = {**document, "controls": [{"ref": "A", "title": "x"}, {"ref": "A", "title": "y"}]}
    r = client.post(f"{API}/frameworks/import", headers=admin,
                    files={"file": ("f.json", json.dumps(duplicate).encode())})
    assert r.status_code == 400 and "duplicate ref" in r.json()["error"]["details"][0]["message"]

    controls_ = client.get(f"{API}/frameworks/our-controls/controls", headers=admin).json()["data"]["items"]
    ids = {c["ref"]: c["id"] for c in controls_}
    missing = "00000000-0000-4000-8000-000000000000"
    r = client.post(f"{API}/mappings", headers=admin,
                    json={"sourceId": ids["OC1"], "targetId": missing, "relation": "equal", "strength": 5})
    assert r.status_code == 404 and r.json()["error"]["details"][0]["field"] == "targetId"
    r = client.post(f"{API}/mappings", headers=admin,
                    json={"sourceId": ids["OC1"], "targetId": ids["OC1.1"], "relation": "superset", "strength": 5})
    mapping = r.json()["data"]["id"]
    assert client.patch(f"{API}/mappings/{mapping}", headers=admin, json={}).status_code == 400
    assert client.patch(f"{API}/mappings/{mapping}", headers=admin, json={"strength": None}).status_code == 400

    rows = {"mappings": [{"source_framework": "our-controls", "source": "OC1.1", "target_framework": "nope",
                          "target": "X", "relation": "equal", "strength": 3}]}
    r = client.post(f"{API}/mappings/import", headers=admin,
                    files={"file": ("file", json.dumps(rows).encode(), "application/json")})
    assert r.status_code == 404 and "'nope' is not imported" in r.json()["error"]["details"][0]["message"]
    rows["mappings"][0].update(target_framework="our-controls", target="OC1")
    r = client.post(f"{API}/mappings/import", headers=admin,
                    files={"file": ("file", json.dumps(rows).encode(), "application/json")})
    assert r.status_code == 200 and r.json()["data"] == {"created": 1, "skipped": 0}
