"""Projects: CRUD, members, duplicate names, optimistic versions, wire timestamps."""

from __future__ import annotations

import re
import uuid

PROJECTS = "/api/v1/projects"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def code_of(response) -> str:
    return response.json()["error"]["code"]


def create(client, headers, name="Readiness 2026", **extra):
    return client.post(PROJECTS, headers=headers, json={"name": name, "framework": "NIST SP 800-53", **extra})


def test_create_read_update_delete(client, world):
    admin = world["admin"].headers
    created = create(client, admin, description="<p>Scope: <b>prod</b></p><script>alert(1)</script>")
    assert created.status_code == 201, created.text
    project = created.json()["data"]
    assert project["status"] == "active" and project["complianceScore"] == 0 and project["version"] == 1
    assert project["description"] == "<p>Scope: <b>prod</b></p>"
    assert project["createdBy"] == str(world["admin"].user_id)
    for key in ("createdAt", "updatedAt"):
        assert ISO_Z.match(project[key]), project[key]
    url = f"{PROJECTS}/{project['id']}"
    assert client.get(url, headers=admin).json()["data"]["name"] == "Readiness 2026"

    updated = client.patch(url, headers=admin, json={"status": "inactive", "name": "Readiness 2027"})
    assert updated.status_code == 200
    data = updated.json()["data"]
    assert (data["status"], data["name"], data["version"]) == ("inactive", "Readiness 2027", 2)
    assert data["updatedAt"] >= data["createdAt"]

    assert client.delete(url, headers=admin).status_code == 200
    assert client.get(url, headers=admin).status_code == 404
    assert client.delete(url, headers=admin).status_code == 404


def test_compliance_score_is_read_only(client, world):
    url = f"{PROJECTS}/{world.project_a}"
    response = client.patch(url, headers=world["admin"].headers, json={"complianceScore": 100})
    assert response.status_code == 400 and code_of(response) == "validation_error"
    assert client.get(url, headers=world["admin"].headers).json()["data"]["complianceScore"] == 0


def test_manager_creating_a_project_becomes_its_manager(client, world):
    created = create(client, world["manager"].headers).json()["data"]
    assert created["myRole"] == "manager"
    members = client.get(f"{PROJECTS}/{created['id']}/members", headers=world["manager"].headers).json()["data"]["items"]
    assert [(m["userId"], m["role"]) for m in members] == [(str(world["manager"].user_id), "manager")]


def test_listing_shows_only_visible_projects(client, world):
    names = lambda headers, **params: sorted(  # noqa: E731
        p["name"] for p in client.get(PROJECTS, headers=headers, params=params).json()["data"]["items"])
    assert names(world["admin"].headers) == ["Project A", "Project B"]
    assert names(world["viewer"].headers) == ["Project A"]
    assert names(world.outsider.headers) == ["Project C"]
    assert names(world["super_admin"].headers) == ["Project A", "Project B", "Project C"]
    client.patch(f"{PROJECTS}/{world.project_b}", headers=world["admin"].headers, json={"status": "archived"})
    assert names(world["admin"].headers, status="archived") == ["Project B"]


def test_projects_of_another_organization_are_404(client, world):
    url = f"{PROJECTS}/{world.project_c}"
    admin = world["admin"].headers
    assert client.get(url, headers=admin).status_code == 404
    assert client.patch(url, headers=admin, json={"name": "mine now"}).status_code == 404
    assert client.delete(url, headers=admin).status_code == 404
    assert client.get(f"{PROJECTS}/{world.project_b}", headers=world["viewer"].headers).status_code == 404


def test_duplicate_names_are_409(client, world):
    admin = world["admin"].headers
    duplicate = create(client, admin, name="Project A")
    assert duplicate.status_code == 409 and code_of(duplicate) == "duplicate"
    rename = client.patch(f"{PROJECTS}/{world.project_b}", headers=admin, json={"name": "Project A"})
    assert rename.status_code == 409 and code_of(rename) == "duplicate"
    # Names are unique per organization, not globally.
    assert create(client, world.outsider.headers, name="Project A").status_code == 201


def test_if_match_detects_a_stale_version(client, world):
    admin = world["admin"].headers
    url = f"{PROJECTS}/{world.project_a}"
    version = client.get(url, headers=admin).json()["data"]["version"]
    ok = client.patch(url, headers={**admin, "If-Match": f'"{version}"'}, json={"description": "first"})
    assert ok.status_code == 200
    stale = client.patch(url, headers={**admin, "If-Match": str(version)}, json={"description": "second"})
    assert stale.status_code == 409 and code_of(stale) == "version_conflict"
    assert client.get(url, headers=admin).json()["data"]["description"] == "first"
    bad = client.patch(url, headers={**admin, "If-Match": "yesterday"}, json={"description": "x"})
    assert bad.status_code == 400


def test_only_project_managers_and_admins_update(client, world):
    url = f"{PROJECTS}/{world.project_a}"
    for role in ("auditor", "customer", "viewer"):
        assert client.patch(url, headers=world[role].headers, json={"description": role}).status_code == 403, role
    assert client.patch(url, headers=world["manager"].headers, json={"description": "ok"}).status_code == 200
    assert client.delete(url, headers=world["manager"].headers).status_code == 403


def test_members_add_change_role_and_remove(client, world, container):
    admin = world["admin"].headers
    url = f"{PROJECTS}/{world.project_b}/members"
    viewer_id = str(world["viewer"].user_id)
    added = client.put(url, headers=admin, json={"userId": viewer_id, "role": "viewer"})
    assert added.status_code == 200 and added.json()["data"]["role"] == "viewer"
    assert client.get(f"{PROJECTS}/{world.project_b}", headers=world["viewer"].headers).status_code == 200

    changed = client.put(url, headers=admin, json={"userId": viewer_id, "role": "auditor"})
    assert changed.json()["data"]["role"] == "auditor"
    listing = client.get(url, headers=admin).json()["data"]["items"]
    assert [(m["userId"], m["role"]) for m in listing] == [(viewer_id, "auditor")]
    assert client.get(f"{PROJECTS}/{world.project_b}", headers=world["viewer"].headers).json()["data"]["myRole"] == "auditor"

    assert client.delete(f"{url}/{viewer_id}", headers=admin).status_code == 200
    assert client.get(f"{PROJECTS}/{world.project_b}", headers=world["viewer"].headers).status_code == 404
    assert client.delete(f"{url}/{viewer_id}", headers=admin).status_code == 404


def test_members_must_be_active_users_of_the_same_organization(client, world):
    admin = world["admin"].headers
    url = f"{PROJECTS}/{world.project_b}/members"
    for user_id in (world.outsider.user_id, uuid.uuid4()):
        response = client.put(url, headers=admin, json={"userId": str(user_id), "role": "viewer"})
        assert response.status_code == 404 and code_of(response) == "not_found"
        assert response.json()["error"]["details"] == [{"field": "userId", "message": "unknown user"}]
    client.delete(f"/api/v1/users/{world['customer'].user_id}", headers=admin)
    inactive = client.put(url, headers=admin, json={"userId": str(world["customer"].user_id), "role": "customer"})
    assert inactive.status_code == 404 and code_of(inactive) == "not_found"
    bad_role = client.put(url, headers=admin, json={"userId": str(world["viewer"].user_id), "role": "admin"})
    assert bad_role.status_code == 400


def test_only_managers_and_admins_manage_members(client, world):
    url = f"{PROJECTS}/{world.project_a}/members"
    body = {"userId": str(world["super_admin"].user_id), "role": "viewer"}
    for role in ("auditor", "customer", "viewer"):
        assert client.put(url, headers=world[role].headers, json=body).status_code == 403, role
    assert client.put(url, headers=world["manager"].headers, json=body).status_code == 200


def test_member_listing_pages(client, world):
    url = f"{PROJECTS}/{world.project_a}/members"
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        data = client.get(url, headers=world["admin"].headers, params=params).json()["data"]
        seen += [m["userId"] for m in data["items"]]
        cursor = data["nextCursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(str(world[r].user_id) for r in ("manager", "auditor", "customer", "viewer"))
    bad = client.get(url, headers=world["admin"].headers, params={"cursor": "nonsense"})
    assert bad.status_code == 400 and code_of(bad) == "invalid_cursor"


def test_project_listing_pages_without_gaps(client, world):
    admin = world["admin"].headers
    for i in range(7):
        assert create(client, admin, name=f"Bulk {i}").status_code == 201
    for order in ("asc", "desc"):
        names: list[str] = []
        cursor = None
        while True:
            params = {"limit": 3, "sort": "name", "order": order, **({"cursor": cursor} if cursor else {})}
            data = client.get(PROJECTS, headers=admin, params=params).json()["data"]
            names += [p["name"] for p in data["items"]]
            cursor = data["nextCursor"]
            if not cursor:
                break
        assert names == sorted(names, reverse=order == "desc") and len(names) == 9


def test_tampered_list_cursor_is_400_not_500(client, world):
    import base64

    import orjson

    for payload in (["created_at", False, "yesterday", str(uuid.uuid4())],
                    ["created_at", False, {"t": "2026-01-01T00:00:00"}, str(uuid.uuid4())],
                    ["name", False, 1, str(uuid.uuid4())]):
        cursor = base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")
        params = {"cursor": cursor, "sort": payload[0]}
        response = client.get(PROJECTS, headers=world["admin"].headers, params=params)
        assert response.status_code == 400 and code_of(response) == "invalid_cursor", payload
