"""Admin-managed users: roles apply on the next request, deactivation is immediate, nobody
grants more than they hold, and e-mails are unique regardless of case."""

from __future__ import annotations

from tests.conftest import TEST_PASSWORD

USERS = "/api/v1/users"
NEW_PASSWORD = "a long enough password"


def code_of(response) -> str:
    return response.json()["error"]["code"]


def new_user(client, headers, email="new@one.example", role="viewer", **extra):
    return client.post(USERS, headers=headers,
                       json={"email": email, "name": "New Person", "role": role, "password": NEW_PASSWORD, **extra})


def test_admin_creates_lists_and_reads_users(client, world):
    admin = world["admin"].headers
    created = new_user(client, admin)
    assert created.status_code == 201, created.text
    user = created.json()["data"]
    assert user["role"] == "viewer" and user["isActive"] is True and user["version"] == 1
    assert user["organizationId"] == str(world.org_id)
    assert user["createdAt"].endswith("Z")
    assert "password" not in created.text.lower().replace("password_hash", "")
    assert client.get(f"{USERS}/{user['id']}", headers=admin).json()["data"]["email"] == "new@one.example"
    emails = [u["email"] for u in client.get(USERS, headers=admin, params={"sort": "email"}).json()["data"]["items"]]
    assert emails == sorted(emails) and "new@one.example" in emails
    assert "admin@two.example" not in emails  # another organization's users stay hidden
    login = client.post("/api/v1/auth/login", json={"email": "new@one.example", "password": NEW_PASSWORD})
    assert login.status_code == 200


def test_only_admins_manage_users(client, world):
    for role in ("manager", "auditor", "customer", "viewer"):
        response = new_user(client, world[role].headers, email=f"by-{role}@one.example")
        assert response.status_code == 403, role
        patch = client.patch(f"{USERS}/{world['viewer'].user_id}", headers=world[role].headers, json={"name": "x"})
        assert patch.status_code == 403, role


def test_foreign_organization_user_is_404(client, world):
    response = client.get(f"{USERS}/{world.outsider.user_id}", headers=world["admin"].headers)
    assert response.status_code == 404
    patch = client.patch(f"{USERS}/{world.outsider.user_id}", headers=world["admin"].headers,
                         json={"role": "viewer"})
    assert patch.status_code == 404


def test_role_change_applies_on_the_next_request(client, world):
    manager = world["manager"].headers
    body = {"name": "Manager's project", "framework": "SOC 2"}
    assert client.post("/api/v1/projects", headers=manager, json=body).status_code == 201
    demote = client.patch(f"{USERS}/{world['manager'].user_id}", headers=world["admin"].headers,
                          json={"role": "viewer"})
    assert demote.status_code == 200 and demote.json()["data"]["role"] == "viewer"
    # The same access token, still unexpired: its next POST is judged by the new role.
    again = client.post("/api/v1/projects", headers=manager, json={**body, "name": "Another"})
    assert again.status_code == 403 and code_of(again) == "forbidden"
    assert client.get("/api/v1/me", headers=manager).json()["data"]["role"] == "viewer"
    promote = client.patch(f"{USERS}/{world['viewer'].user_id}", headers=world["admin"].headers,
                           json={"role": "manager"})
    assert promote.status_code == 200
    assert client.post("/api/v1/projects", headers=world["viewer"].headers, json={**body, "name": "Third"}).status_code == 201


def test_deactivation_ends_access_immediately(client, world):
    viewer = world["viewer"].headers
    assert client.get("/api/v1/projects", headers=viewer).status_code == 200
    off = client.patch(f"{USERS}/{world['viewer'].user_id}", headers=world["admin"].headers, json={"isActive": False})
    assert off.status_code == 200 and off.json()["data"]["isActive"] is False
    assert client.get("/api/v1/projects", headers=viewer).status_code == 401
    # Reactivated, they log in again (their old sessions stay dead: see the next test).
    client.patch(f"{USERS}/{world['viewer'].user_id}", headers=world["admin"].headers, json={"isActive": True})
    login = client.post("/api/v1/auth/login", json={"email": "viewer@one.example", "password": TEST_PASSWORD})
    assert login.status_code == 200


def test_deactivated_user_refresh_token_stays_dead_after_reactivation(client, world):
    pair = client.post("/api/v1/auth/login", json={"email": "viewer@one.example", "password": TEST_PASSWORD}).json()["data"]
    admin = world["admin"].headers
    client.patch(f"{USERS}/{world['viewer'].user_id}", headers=admin, json={"isActive": False})
    client.patch(f"{USERS}/{world['viewer'].user_id}", headers=admin, json={"isActive": True})
    assert client.post("/api/v1/auth/refresh", json={"refreshToken": pair["refreshToken"]}).status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {pair['accessToken']}"}).status_code == 401


def test_delete_deactivates_and_keeps_the_record(client, world):
    admin = world["admin"].headers
    viewer_id = world["viewer"].user_id
    assert client.delete(f"{USERS}/{viewer_id}", headers=admin).status_code == 200
    assert client.get("/api/v1/me", headers=world["viewer"].headers).status_code == 401
    kept = client.get(f"{USERS}/{viewer_id}", headers=admin).json()["data"]
    assert kept["isActive"] is False
    assert client.delete(f"{USERS}/{viewer_id}", headers=admin).status_code == 404


def test_only_a_super_admin_grants_super_admin(client, world):
    admin = world["admin"].headers
    created = new_user(client, admin, role="super_admin")
    assert created.status_code == 403
    promote = client.patch(f"{USERS}/{world['manager'].user_id}", headers=admin, json={"role": "super_admin"})
    assert promote.status_code == 403
    touch_super = client.patch(f"{USERS}/{world['super_admin'].user_id}", headers=admin, json={"role": "viewer"})
    assert touch_super.status_code == 403
    assert client.delete(f"{USERS}/{world['super_admin'].user_id}", headers=admin).status_code == 403
    by_super = client.patch(f"{USERS}/{world['manager'].user_id}", headers=world["super_admin"].headers,
                            json={"role": "super_admin"})
    assert by_super.status_code == 200 and by_super.json()["data"]["role"] == "super_admin"


def test_super_admin_creates_users_in_another_organization(client, world):
    response = new_user(client, world["super_admin"].headers, email="second@two.example",
                        organizationId=str(world.other_org_id))
    assert response.status_code == 201 and response.json()["data"]["organizationId"] == str(world.other_org_id)
    by_admin = new_user(client, world["admin"].headers, email="sneaky@two.example",
                        organizationId=str(world.other_org_id))
    assert by_admin.status_code == 403


def test_nobody_changes_their_own_role_or_deletes_themselves(client, world):
    for role in ("admin", "super_admin"):
        me = world[role]
        own_role = client.patch(f"{USERS}/{me.user_id}", headers=me.headers, json={"role": "viewer"})
        assert own_role.status_code == 409, role
        own_off = client.patch(f"{USERS}/{me.user_id}", headers=me.headers, json={"isActive": False})
        assert own_off.status_code == 409, role
        delete = client.delete(f"{USERS}/{me.user_id}", headers=me.headers)
        assert delete.status_code == 409, role
        assert client.get("/api/v1/me", headers=me.headers).json()["data"]["role"] == role


def test_emails_are_unique_case_insensitively(client, container, world):
    admin = world["admin"].headers
    assert new_user(client, admin, email="Casey@One.example").status_code == 201
    for email in ("casey@one.example", "CASEY@ONE.EXAMPLE", "viewer@ONE.example"):
        response = new_user(client, admin, email=email)
        assert response.status_code == 409, email
        assert code_of(response) == "duplicate"
    stored = client.get(USERS, headers=admin, params={"limit": 200}).json()["data"]["items"]
    assert sum(u["email"] == "casey@one.example" for u in stored) == 1


def test_stale_version_is_a_conflict(client, world):
    admin = world["admin"].headers
    target = f"{USERS}/{world['auditor'].user_id}"
    version = client.get(target, headers=admin).json()["data"]["version"]
    first = client.patch(target, headers={**admin, "If-Match": str(version)}, json={"name": "Renamed"})
    assert first.status_code == 200 and first.json()["data"]["version"] == version + 1
    stale = client.patch(target, headers={**admin, "If-Match": str(version)}, json={"name": "Lost update"})
    assert stale.status_code == 409 and code_of(stale) == "version_conflict"
    assert client.get(target, headers=admin).json()["data"]["name"] == "Renamed"


def test_empty_update_and_short_password_are_rejected(client, world):
    target = f"{USERS}/{world['auditor'].user_id}"
    admin = world["admin"].headers
    assert client.patch(target, headers=admin, json={}).status_code == 400
    short = client.patch(target, headers=admin, json={"password": "short"})
    assert short.status_code == 400 and code_of(short) == "validation_error"


def test_password_change_lets_the_user_log_in_with_the_new_one(client, world):
    target = f"{USERS}/{world['auditor'].user_id}"
    assert client.patch(target, headers=world["admin"].headers, json={"password": NEW_PASSWORD}).status_code == 200
    old = client.post("/api/v1/auth/login", json={"email": "auditor@one.example", "password": TEST_PASSWORD})
    new = client.post("/api/v1/auth/login", json={"email": "auditor@one.example", "password": NEW_PASSWORD})
    assert (old.status_code, new.status_code) == (401, 200)


def test_super_admin_cannot_create_users_in_a_missing_organization(client, world):
    import uuid

    response = new_user(client, world["super_admin"].headers, email="ghost@nowhere.example",
                        organizationId=str(uuid.uuid4()))
    assert response.status_code == 400 and code_of(response) == "validation_error"
