"""Authentication: Argon2id passwords, pinned-algorithm access JWTs, rotating refresh tokens
with reuse detection, logout, and personal API tokens (hashed, revocable, expiring)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid
import warnings

import jwt
import pytest
from argon2 import extract_parameters
from argon2.low_level import Type
from jwt.warnings import InsecureKeyLengthWarning
from sqlalchemy import select

from studio.db.engine import metadata
from studio.domains.auth.models import api_tokens, refresh_tokens
from studio.domains.auth.security import Passwords
from studio.domains.users.models import users
from studio.events.models import events
from studio.settings import Settings
from tests.conftest import TEST_PASSWORD

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
TOKENS = "/api/v1/tokens"
ME = "/api/v1/me"


def login(client, email: str, password: str = TEST_PASSWORD):
    return client.post(LOGIN, json={"email": email, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(response) -> str:
    body = response.json()
    assert body["success"] is False
    return body["error"]["code"]


def events_of(container, type_: str) -> list[dict]:
    with container.db.read() as conn:
        rows = conn.execute(
            select(events.c.data, events.c.metadata).where(events.c.type == type_).order_by(events.c.position)
        ).all()
    return [{"data": json.loads(r.data), "metadata": json.loads(r.metadata)} for r in rows]


def craft(container, *, key: str | None = None, algorithm: str = "HS256", **overrides) -> str:
    """An access token like the server's, with some claims changed."""
    s = container.settings
    now = int(dt.datetime.now(dt.UTC).timestamp())
    user_id, org_id = overrides.pop("_user"), overrides.pop("_org")
    claims = {"sub": str(user_id), "org": str(org_id), "sid": None, "aud": s.jwt_audience,
              "iss": s.jwt_issuer, "iat": now, "nbf": now, "exp": now + 300, "jti": uuid.uuid4().hex}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not ...}
    with warnings.catch_warnings():
        # The test key is too short for HS512; the forgery only needs a valid signature.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, key if key is not None else s.signing_key, algorithm=algorithm)


# -- passwords ---------------------------------------------------------------------------
def test_stored_hash_is_argon2id_with_configured_parameters(container, world):
    with container.db.read() as conn:
        stored = conn.execute(select(users.c.password_hash).where(users.c.email == "viewer@one.example")).scalar_one()
    assert stored.startswith("$argon2id$")
    params = extract_parameters(stored)
    s = container.settings
    assert (params.type, params.memory_cost, params.time_cost, params.parallelism) == (
        Type.ID, s.argon2_memory_kib, s.argon2_time_cost, s.argon2_parallelism)


def test_default_settings_use_owasp_minimum(tmp_path):
    defaults = Settings(data_dir=tmp_path)
    assert (defaults.argon2_memory_kib, defaults.argon2_time_cost, defaults.argon2_parallelism) == (19 * 1024, 2, 1)
    hashed = Passwords(defaults.argon2_memory_kib, defaults.argon2_time_cost, defaults.argon2_parallelism).hash("pw")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_login_returns_a_working_pair(client, world):
    response = login(client, "Manager@ONE.example")  # e-mail matching ignores case
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["tokenType"] == "Bearer" and data["user"]["role"] == "manager"
    assert data["expiresAt"].endswith("Z") and data["refreshExpiresAt"].endswith("Z")
    me = client.get(ME, headers=bearer(data["accessToken"]))
    assert me.status_code == 200 and me.json()["data"]["email"] == "manager@one.example"


@pytest.mark.parametrize("email,password", [
    ("viewer@one.example", "wrong password entirely"),
    ("nobody@one.example", TEST_PASSWORD),
])
def test_bad_credentials_are_401_and_recorded(client, container, world, email, password):
    response = login(client, email, password)
    assert response.status_code == 401
    assert error_code(response) == "invalid_credentials"
    failed = events_of(container, "auth.login_failed")
    assert len(failed) == 1 and failed[0]["data"]["email"] == email
    assert failed[0]["data"]["reason"] == "bad_credentials"
    # The answer does not reveal which of the two was wrong.
    assert response.json()["error"]["message"] == login(client, "x" + email, password).json()["error"]["message"]


def test_inactive_user_cannot_log_in(client, container, world):
    admin = world["admin"].headers
    assert client.delete(f"/api/v1/users/{world['viewer'].user_id}", headers=admin).status_code == 200
    response = login(client, "viewer@one.example")
    assert response.status_code == 401 and error_code(response) == "invalid_credentials"
    assert events_of(container, "auth.login_failed")[-1]["data"]["reason"] == "inactive"


# -- access tokens -----------------------------------------------------------------------
def test_access_token_is_hs256_and_carries_no_role(client, container, world):
    token = login(client, "admin@one.example").json()["data"]["accessToken"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, container.settings.signing_key, algorithms=["HS256"],
                        audience=container.settings.jwt_audience)
    assert claims["sub"] == str(world["admin"].user_id)
    assert claims["iss"] == container.settings.jwt_issuer
    assert {"exp", "nbf", "aud", "iss", "sid"} <= set(claims)
    assert "role" not in claims and "admin" not in json.dumps(claims)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _with_header(token: str, header: dict) -> str:
    """The same claims and signature under another header (an algorithm-confusion attempt)."""
    _, payload, signature = token.split(".")
    return ".".join((_b64(json.dumps(header).encode()), payload, signature))


def _bad_tokens(container, world):
    ids = {"_user": world["viewer"].user_id, "_org": world.org_id}
    now = int(dt.datetime.now(dt.UTC).timestamp())
    none_token = jwt.encode(
        {"sub": str(ids["_user"]), "org": str(ids["_org"]), "aud": container.settings.jwt_audience,
         "iss": container.settings.jwt_issuer, "nbf": now, "exp": now + 300}, None, algorithm="none")
    return {
        "expired": ("token_expired", craft(container, **ids, iat=now - 4000, nbf=now - 4000, exp=now - 3000)),
        "not yet valid": ("invalid_token", craft(container, **ids, nbf=now + 3000, exp=now + 4000)),
        "wrong audience": ("invalid_token", craft(container, **ids, aud="another-api")),
        "wrong issuer": ("invalid_token", craft(container, **ids, iss="someone-else")),
        "no exp": ("invalid_token", craft(container, **ids, exp=...)),
        "no aud": ("invalid_token", craft(container, **ids, aud=...)),
        "wrong key": ("invalid_token", craft(container, key="x" * 64, **ids)),
        "alg none": ("invalid_token", none_token),
        "HS512": ("invalid_token", craft(container, algorithm="HS512", **ids)),
        "RS256": ("invalid_token", _with_header(craft(container, **ids), {"alg": "RS256", "typ": "JWT"})),
        "other org": ("invalid_token", craft(container, _user=ids["_user"], _org=world.other_org_id)),
        "garbage": ("invalid_token", "not.a.jwt"),
    }


def test_forged_and_invalid_access_tokens_are_refused(client, container, world):
    good = craft(container, _user=world["viewer"].user_id, _org=world.org_id)
    assert client.get(ME, headers=bearer(good)).status_code == 200  # the crafting itself is right
    for name, (code, token) in _bad_tokens(container, world).items():
        response = client.get(ME, headers=bearer(token))
        assert response.status_code == 401, name
        assert error_code(response) == code, name


# -- refresh rotation ---------------------------------------------------------------------
def test_refresh_rotates_and_the_old_token_then_fails(client, world):
    first = login(client, "auditor@one.example").json()["data"]
    rotated = client.post(REFRESH, json={"refreshToken": first["refreshToken"]})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["data"]
    assert second["refreshToken"] != first["refreshToken"]
    assert second["accessToken"] != first["accessToken"]
    assert client.get(ME, headers=bearer(second["accessToken"])).status_code == 200
    again = client.post(REFRESH, json={"refreshToken": first["refreshToken"]})
    assert again.status_code == 401 and error_code(again) == "refresh_token_reused"


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(client, container, world):
    first = login(client, "auditor@one.example").json()["data"]
    other_session = login(client, "auditor@one.example").json()["data"]
    second = client.post(REFRESH, json={"refreshToken": first["refreshToken"]}).json()["data"]
    third = client.post(REFRESH, json={"refreshToken": second["refreshToken"]}).json()["data"]
    assert client.get(ME, headers=bearer(third["accessToken"])).status_code == 200

    reuse = client.post(REFRESH, json={"refreshToken": first["refreshToken"]})
    assert reuse.status_code == 401 and error_code(reuse) == "refresh_token_reused"
    # The newest refresh token of the family is dead too ...
    newest = client.post(REFRESH, json={"refreshToken": third["refreshToken"]})
    assert newest.status_code == 401
    # ... and so is every access token of that session, at once.
    for token in (first["accessToken"], second["accessToken"], third["accessToken"]):
        assert client.get(ME, headers=bearer(token)).status_code == 401
    # Another session of the same user is untouched.
    assert client.get(ME, headers=bearer(other_session["accessToken"])).status_code == 200
    assert client.post(REFRESH, json={"refreshToken": other_session["refreshToken"]}).status_code == 200
    assert len(events_of(container, "auth.refresh_reused")) == 1


def test_unknown_refresh_token_is_401(client, world):
    response = client.post(REFRESH, json={"refreshToken": "never-issued"})
    assert response.status_code == 401 and error_code(response) == "invalid_token"


def test_refresh_of_a_deactivated_user_fails(client, world):
    pair = login(client, "viewer@one.example").json()["data"]
    client.delete(f"/api/v1/users/{world['viewer'].user_id}", headers=world["admin"].headers)
    response = client.post(REFRESH, json={"refreshToken": pair["refreshToken"]})
    assert response.status_code == 401


def test_expired_refresh_token_fails(client, container, world):
    pair = login(client, "viewer@one.example").json()["data"]
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with container.db.write() as uow:
        uow.conn.execute(refresh_tokens.update().values(expires_at=past))
    response = client.post(REFRESH, json={"refreshToken": pair["refreshToken"]})
    assert response.status_code == 401 and error_code(response) == "invalid_token"


def test_refresh_tokens_are_stored_hashed(client, container, world):
    pair = login(client, "viewer@one.example").json()["data"]
    with container.db.read() as conn:
        stored = conn.execute(select(refresh_tokens.c.token_hash)).scalars().all()
    assert hashlib.sha256(pair["refreshToken"].encode()).hexdigest() in stored
    assert pair["refreshToken"] not in stored


# -- logout ---------------------------------------------------------------------------------
def test_logout_ends_the_session_on_the_next_request(client, container, world):
    pair = login(client, "manager@one.example").json()["data"]
    other = login(client, "manager@one.example").json()["data"]
    headers = bearer(pair["accessToken"])
    assert client.get("/api/v1/projects", headers=headers).status_code == 200
    assert client.post(LOGOUT, headers=headers).status_code == 200
    after = client.get("/api/v1/projects", headers=headers)
    assert after.status_code == 401 and error_code(after) == "invalid_token"
    # the evidence list loads the caller together with the project: the same check holds
    evidence = client.get(f"/api/v1/projects/{world.project_a}/evidence", headers=headers)
    assert evidence.status_code == 401 and error_code(evidence) == "invalid_token"
    assert client.get(f"/api/v1/projects/{world.project_a}/evidence",
                      headers=bearer(other["accessToken"])).status_code == 200
    assert client.post(REFRESH, json={"refreshToken": pair["refreshToken"]}).status_code == 401
    assert client.get(ME, headers=bearer(other["accessToken"])).status_code == 200
    assert len(events_of(container, "auth.logged_out")) == 1


# -- personal API tokens -----------------------------------------------------------------------
def _create_token(client, headers, **body):
    response = client.post(TOKENS, headers=headers, json={"name": "ci pipeline", **body})
    assert response.status_code == 201, response.text
    return response.json()["data"]


def test_api_token_is_shown_once_and_stored_only_as_digest(client, container, world):
    headers = world["customer"].headers
    created = _create_token(client, headers)
    secret = created["token"]
    assert secret.startswith("stp_") and len(secret) > 40
    assert created["prefix"] == secret[:10]
    with container.db.read() as conn:
        row = conn.execute(select(api_tokens).where(api_tokens.c.id == uuid.UUID(created["id"]))).mappings().one()
        # Every table of the schema: the secret must not be anywhere, events and logs included.
        dump = "\n".join(
            str(tuple(r)) for table in metadata.sorted_tables for r in conn.execute(select(table))
        )
    assert row["token_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in dump
    listed = client.get(TOKENS, headers=headers).json()["data"]["items"]
    assert [t["id"] for t in listed] == [created["id"]]
    assert "token" not in listed[0] and secret not in json.dumps(listed)


def test_api_token_works_as_bearer_and_revocation_is_immediate(client, container, world):
    created = _create_token(client, world["customer"].headers)
    script = bearer(created["token"])
    me = client.get(ME, headers=script)
    assert me.status_code == 200 and me.json()["data"]["role"] == "customer"
    pushed = client.post(f"/api/v1/projects/{world.project_a}/evidence", headers=script,
                         json={"title": "pushed by a script"})
    assert pushed.status_code == 201, pushed.text
    revoked = client.delete(f"{TOKENS}/{created['id']}", headers=world["customer"].headers)
    assert revoked.status_code == 200
    after = client.get(ME, headers=script)
    assert after.status_code == 401 and error_code(after) == "invalid_token"
    listed = client.get(TOKENS, headers=world["customer"].headers).json()["data"]["items"]
    assert listed[0]["revokedAt"].endswith("Z")
    assert [e["data"]["tokenId"] for e in events_of(container, "token.revoked")] == [created["id"]]


def test_api_token_of_someone_else_cannot_be_revoked(client, world):
    created = _create_token(client, world["customer"].headers)
    response = client.delete(f"{TOKENS}/{created['id']}", headers=world["admin"].headers)
    assert response.status_code == 404
    assert client.get(ME, headers=bearer(created["token"])).status_code == 200


def test_expired_api_token_is_refused(client, container, world):
    created = _create_token(client, world["viewer"].headers, expiresInDays=1)
    assert client.get(ME, headers=bearer(created["token"])).status_code == 200
    with container.db.write() as uow:
        uow.conn.execute(api_tokens.update().values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    assert client.get(ME, headers=bearer(created["token"])).status_code == 401


def test_api_token_cannot_mint_api_tokens(client, world):
    created = _create_token(client, world["manager"].headers)
    response = client.post(TOKENS, headers=bearer(created["token"]), json={"name": "escalation"})
    assert response.status_code == 403 and error_code(response) == "forbidden"


def test_api_tokens_die_with_their_user(client, world):
    created = _create_token(client, world["viewer"].headers)
    client.delete(f"/api/v1/users/{world['viewer'].user_id}", headers=world["admin"].headers)
    assert client.get(ME, headers=bearer(created["token"])).status_code == 401


def test_login_upgrades_a_hash_made_with_other_parameters(client, container, world):
    old = Passwords(memory_kib=2048, time_cost=3, parallelism=1).hash(TEST_PASSWORD)
    with container.db.write() as uow:
        uow.conn.execute(users.update().where(users.c.email == "auditor@one.example").values(password_hash=old))
    assert login(client, "auditor@one.example").status_code == 200
    with container.db.read() as conn:
        stored = conn.execute(select(users.c.password_hash).where(users.c.email == "auditor@one.example")).scalar_one()
    params = extract_parameters(stored)
    assert stored != old
    assert (params.memory_cost, params.time_cost) == (container.settings.argon2_memory_kib,
                                                      container.settings.argon2_time_cost)
    assert login(client, "auditor@one.example").status_code == 200


def test_concurrent_refresh_with_one_token_lets_exactly_one_through(client, container, world):
    """Two holders racing with the same refresh token: one rotates, the other is a reuse."""
    import threading

    from studio.errors import AppError

    pair = login(client, "manager@one.example").json()["data"]
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def attempt() -> None:
        barrier.wait()
        try:
            outcomes.append(container.auth.refresh(pair["refreshToken"]))
        except AppError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winners = [o for o in outcomes if isinstance(o, dict)]
    assert len(winners) == 1 and outcomes.count("refresh_token_reused") == 1, outcomes
    # The race itself is a reuse: the whole session ends, the winner's new pair included.
    assert client.post(REFRESH, json={"refreshToken": winners[0]["refreshToken"]}).status_code == 401
    assert client.get(ME, headers=bearer(winners[0]["accessToken"])).status_code == 401
