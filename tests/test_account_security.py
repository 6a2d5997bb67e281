"""Account security: passwords checked for strength wherever one is set, CSRF tokens bound to
their session, login throttling that a stranger cannot turn into a lockout of a device its
user signed in from, and names made only of invisible characters refused like empty ones."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import TypeAdapter, ValidationError
from starlette.testclient import TestClient
from typer.testing import CliRunner

from studio.app import create_app
from studio.bootstrap import bootstrap
from studio.cli.main import app as cli_app
from studio.domains.auth.schemas import ApiTokenCreate
from studio.domains.evidence.schemas import EvidenceCreate, EvidenceUpdate
from studio.domains.frameworks.schemas import FrameworkDocument
from studio.domains.projects.schemas import ProjectCreate, ProjectUpdate
from studio.domains.users.schemas import UserCreate, UserUpdate
from studio.validation import Name
from tests.conftest import TEST_PASSWORD, make_settings, seed_world, service_url

API = "/api/v1"
STRONG = "granite walrus mandolin 71"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert body["success"] is False, body
    error: dict[str, Any] = body["error"]
    return error


def field_messages(response: Any) -> dict[str, str]:
    return {d["field"]: d["message"] for d in error_of(response)["details"]}


def csrf_of(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


def web_login(client: TestClient, email: str, password: str = TEST_PASSWORD, **kw: Any) -> Any:
    page = client.get("/login", **kw)
    assert page.status_code == 200
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf": csrf_of(page.text)}, **kw)


def web_client(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False, follow_redirects=False)


def replace_cookie(client: TestClient, name: str, value: str) -> None:
    for cookie in list(client.cookies.jar):
        if cookie.name == name:
            client.cookies.delete(name, domain=cookie.domain, path=cookie.path)
    client.cookies.set(name, value)


# == 4. Password policy =======================================================================
WEAK_PASSWORDS = [
    ("            ", "too predictable"),  # twelve spaces: long enough, and nothing else
    ("password1234", "too common"),
    ("Password123!", "too common"),
    ("Summer2024!!", "too common"),  # the season-and-year pattern sprayers try first
    ("qwertyuiop123", "too common"),
    ("aaaaaaaaaaaaaaaa", "too predictable"),
    ("abcdefghijklmnop", "too predictable"),
    ("zxcvbnm,./123", "too predictable"),
    ("new.person@one.example", "must not contain your e-mail address"),
    ("NewPerson-rides-a-bike", "must not contain your e-mail address"),
    ("ask-New-Person-1984!", "must not contain your e-mail address"),
]


def create_user(client: TestClient, headers: dict[str, str], password: str, **extra: Any) -> Any:
    return client.post(f"{API}/users", headers=headers, json={
        "email": "new.person@one.example", "name": "New Person", "role": "viewer",
        "password": password, **extra})


@pytest.mark.parametrize("password,reason", WEAK_PASSWORDS, ids=[w[0] for w in WEAK_PASSWORDS])
def test_api_refuses_weak_passwords_and_says_why(client, world, password, reason):
    response = create_user(client, world["admin"].headers, password)
    assert response.status_code == 400, response.text
    assert error_of(response)["code"] == "validation_error"
    assert field_messages(response)["password"].startswith(reason), response.text


def test_api_refuses_a_password_containing_the_name(client, world):
    response = create_user(client, world["admin"].headers, "Quinn Harlow, 1984!", name="Quinn Harlow")
    assert response.status_code == 400
    assert field_messages(response)["password"] == "must not contain your name"


def test_api_accepts_strong_and_long_passwords_up_to_the_maximum(client, world):
    admin = world["admin"].headers
    assert create_user(client, admin, STRONG).status_code == 201
    long_one = ("pebble orchid lantern " * 12)[:256]  # ASVS: at least 64 must be allowed
    created = create_user(client, admin, long_one, email="long@one.example")
    assert created.status_code == 201, created.text
    login = client.post(f"{API}/auth/login", json={"email": "long@one.example", "password": long_one})
    assert login.status_code == 200
    too_long = create_user(client, admin, long_one + "x", email="longer@one.example")
    assert too_long.status_code == 400 and "password" in field_messages(too_long)


def test_password_change_is_checked_against_the_stored_user(client, world):
    target = f"{API}/users/{world['auditor'].user_id}"
    admin = world["admin"].headers
    common = client.patch(target, headers=admin, json={"password": "password1234"})
    assert common.status_code == 400 and field_messages(common)["password"].startswith("too common")
    # The e-mail is not in the request: the stored one counts.
    own = client.patch(target, headers=admin, json={"password": "Auditor-at-work-2024!"})
    assert own.status_code == 400
    assert field_messages(own)["password"].startswith("must not contain your e-mail address")
    renamed = client.patch(target, headers=admin, json={"name": "Zephyrine Quist",
                                                        "password": "zephyrine quist rocks"})
    assert renamed.status_code == 400
    assert field_messages(renamed)["password"].startswith("must not contain your name")
    assert client.patch(target, headers=admin, json={"password": STRONG}).status_code == 200


def test_web_user_form_refuses_a_weak_password(app, world):
    browser = web_client(app)
    assert web_login(browser, world["admin"].email).status_code == 303
    page = browser.get("/users")
    response = browser.post("/users", data={"csrf": csrf_of(page.text), "name": "Web Person",
                                            "email": "web.person@one.example", "role": "viewer",
                                            "password": "            "})
    assert response.status_code == 400
    assert "too predictable" in response.text
    assert 'value="Web Person"' in response.text
    browser.close()


def test_cli_user_create_refuses_a_weak_password(tmp_path, database_url):
    env = {
        "STUDIO_DATA_DIR": str(tmp_path / "data"),
        "STUDIO_DATABASE_URL": database_url,
        "STUDIO_ARGON2_MEMORY_KIB": "1024",
        "STUDIO_ARGON2_TIME_COST": "1",
        "STUDIO_LOG_LEVEL": "WARNING",
    }
    try:
        runner = CliRunner()
        args = ["user", "create", "--email", "root@example.org", "--name", "Root", "--role", "admin"]
        weak = runner.invoke(cli_app, [*args, "--password", "password1234"], env=env)
        assert weak.exit_code == 2, weak.output
        assert "too common" in weak.output
        mine = runner.invoke(cli_app, [*args, "--password", "root@example.org!"], env=env)
        assert mine.exit_code == 2 and "e-mail" in mine.output
        strong = runner.invoke(cli_app, [*args, "--password", STRONG], env=env)
        assert strong.exit_code == 0, strong.output
    finally:
        structlog.reset_defaults()


def test_schemas_check_the_password_in_context():
    with pytest.raises(ValidationError) as refused:
        UserCreate.model_validate({"email": "kim@one.example", "name": "Kim Lee", "role": "viewer",
                                   "password": "kim@one.example 2024"})
    assert [e["loc"] for e in refused.value.errors()] == [("password",)]
    with pytest.raises(ValidationError):
        UserUpdate.model_validate({"password": "password1234"})
    assert UserUpdate.model_validate({"password": STRONG}).password == STRONG


def test_demo_passwords_pass_the_policy():
    # `studio demo` makes secrets.token_urlsafe(12) passwords; every one must be acceptable.
    from studio.domains.auth.passwords import password_problem

    for _ in range(200):
        password = secrets.token_urlsafe(12)
        assert password_problem(password, email="viewer@demo.example", name="Demo Viewer") is None


# == 5. CSRF tokens bound to the session =======================================================
def test_api_refuses_a_csrf_token_from_another_session(app, world):
    customer, manager = web_client(app), web_client(app)
    assert web_login(customer, world["customer"].email).status_code == 303
    assert web_login(manager, world["manager"].email).status_code == 303
    url = f"{API}/projects/{world.project_a}/evidence"
    foreign = manager.cookies.get("studio_csrf")
    assert foreign
    # A token planted as the cookie and sent as the header: the double submit matches,
    # but the token belongs to the manager's session.
    replace_cookie(customer, "studio_csrf", foreign)
    planted = customer.post(url, json={"title": "Forged"}, headers={"X-CSRF-Token": foreign})
    assert planted.status_code == 403 and error_of(planted)["code"] == "csrf_failed"
    # Any value the attacker chooses for both is refused too.
    replace_cookie(customer, "studio_csrf", "attacker-chosen")
    chosen = customer.post(url, json={"title": "Forged"}, headers={"X-CSRF-Token": "attacker-chosen"})
    assert chosen.status_code == 403 and error_of(chosen)["code"] == "csrf_failed"
    # The manager's own token still works for the manager.
    own = manager.post(url, json={"title": "Real"}, headers={"X-CSRF-Token": foreign})
    assert own.status_code == 201, own.text
    customer.close()
    manager.close()


def test_api_refuses_the_token_of_an_ended_session(app, world):
    browser = web_client(app)
    assert web_login(browser, world["customer"].email).status_code == 303
    old = browser.cookies.get("studio_csrf")
    assert old
    browser.post("/logout", data={"csrf": old})
    assert web_login(browser, world["customer"].email).status_code == 303
    replace_cookie(browser, "studio_csrf", old)
    url = f"{API}/projects/{world.project_a}/evidence"
    refused = browser.post(url, json={"title": "Stale"}, headers={"X-CSRF-Token": old})
    assert refused.status_code == 403 and error_of(refused)["code"] == "csrf_failed"
    browser.close()


def test_web_form_refuses_a_csrf_token_from_another_session(app, world):
    customer, manager = web_client(app), web_client(app)
    assert web_login(customer, world["customer"].email).status_code == 303
    assert web_login(manager, world["manager"].email).status_code == 303
    foreign = csrf_of(manager.get("/dashboard").text)
    replace_cookie(customer, "studio_csrf", foreign)
    refused = customer.post(f"/projects/{world.project_a}/evidence",
                            data={"title": "Forged", "csrf": foreign})
    assert refused.status_code == 403
    customer.close()
    manager.close()


# == 6. Login throttling without lockout =======================================================
def _with_client_ip(app: Any) -> Any:
    """Let a test choose the client address of each request (X-Test-Client-IP)."""

    async def shim(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            sent = next((v for k, v in scope["headers"] if k == b"x-test-client-ip"), None)
            if sent is not None:
                scope = {**scope, "client": (sent.decode(), 40000)}
        await app(scope, receive, send)

    return shim


def from_ip(address: str) -> dict[str, str]:
    return {"X-Test-Client-IP": address}


@contextmanager
def throttled_app(tmp_path: Path, database_url: str, **limits: Any) -> Iterator[tuple[Any, Any]]:
    settings = make_settings(tmp_path, database_url, rate_limit_enabled=True,
                             rate_limit_ip="1000/minute", rate_limit_user="1000/minute", **limits)
    container = bootstrap(settings)
    try:
        seed_world(container)
        yield container, _with_client_ip(create_app(container))
    finally:
        container.close()


def api_login(client: TestClient, email: str, password: str, address: str) -> Any:
    return client.post(f"{API}/auth/login", json={"email": email, "password": password},
                       headers=from_ip(address))


def test_strangers_guessing_an_email_do_not_lock_out_its_users_device(tmp_path, database_url):
    # Only the settings that exist today: the old per-e-mail budget let three wrong guesses
    # from anywhere keep the right password out, from every device.
    with throttled_app(tmp_path, database_url, rate_limit_login="3/minute") as (_, app):
        device = web_client(app)
        assert api_login(device, "viewer@one.example", TEST_PASSWORD, "10.9.0.1").status_code == 200
        stranger = web_client(app)
        for n in range(3):
            wrong = api_login(stranger, "viewer@one.example", "guess guess guess", f"10.9.1.{n}")
            assert wrong.status_code == 401
        again = api_login(device, "viewer@one.example", TEST_PASSWORD, "10.9.0.1")
        assert again.status_code == 200, again.text
        device.close()
        stranger.close()


def test_per_account_limit_spares_known_devices_only(tmp_path, database_url):
    with throttled_app(tmp_path, database_url, rate_limit_login="100/minute",
                       rate_limit_login_account="3/hour",
                       rate_limit_login_account_ip="2/minute") as (_, app):
        device, other_account, stranger = web_client(app), web_client(app), web_client(app)
        signed_in = api_login(device, "viewer@one.example", TEST_PASSWORD, "10.8.0.1")
        assert signed_in.status_code == 200
        cookie = next(h for h in signed_in.headers.get_list("set-cookie")
                      if h.startswith("studio_device="))
        assert "httponly" in cookie.lower() and "max-age" in cookie.lower()
        assert api_login(other_account, "auditor@one.example", TEST_PASSWORD, "10.8.0.2").status_code == 200
        # Strangers spend the account's budget for unknown devices, one address each.
        for n in range(3):
            assert api_login(stranger, "viewer@one.example", "guess guess guess",
                             f"10.8.1.{n}").status_code == 401
        locked = api_login(stranger, "viewer@one.example", TEST_PASSWORD, "10.8.1.9")
        assert locked.status_code == 429 and error_of(locked)["code"] == "rate_limited"
        assert int(locked.headers["retry-after"]) >= 1
        # ... which neither a device cookie of another account nor a forged one gets around.
        assert api_login(other_account, "viewer@one.example", TEST_PASSWORD,
                         "10.8.0.2").status_code == 429
        replace_cookie(stranger, "studio_device", "forged.0123456789abcdef0123456789abcdef")
        assert api_login(stranger, "viewer@one.example", TEST_PASSWORD, "10.8.1.9").status_code == 429
        # The device the user signed in from before still gets in with the right password.
        assert api_login(device, "viewer@one.example", TEST_PASSWORD, "10.8.0.1").status_code == 200
        # It is no free pass: wrong guesses from it are throttled on their own budget.
        statuses = [api_login(device, "viewer@one.example", "guess guess guess", "10.8.0.1").status_code
                    for _ in range(3)]
        assert statuses == [401, 401, 429]
        for client in (device, other_account, stranger):
            client.close()


def test_throttle_per_account_and_address(tmp_path, database_url):
    with throttled_app(tmp_path, database_url, rate_limit_login="100/minute",
                       rate_limit_login_account="100/hour",
                       rate_limit_login_account_ip="2/minute;3/hour") as (_, app):
        client = web_client(app)
        statuses = [api_login(client, "viewer@one.example", "guess guess guess", "10.7.0.1").status_code
                    for _ in range(3)]
        assert statuses == [401, 401, 429]
        blocked = api_login(client, "viewer@one.example", TEST_PASSWORD, "10.7.0.1")
        assert blocked.status_code == 429 and "login" in error_of(blocked)["message"]
        # Another account from the same address, and the same account from another address,
        # are not slowed by it.
        assert api_login(client, "auditor@one.example", TEST_PASSWORD, "10.7.0.1").status_code == 200
        assert api_login(client, "viewer@one.example", TEST_PASSWORD, "10.7.0.2").status_code == 200
        # Successful logins spend nothing.
        assert {api_login(client, "auditor@one.example", TEST_PASSWORD, "10.7.0.1").status_code
                for _ in range(4)} == {200}
        client.close()


def test_per_address_limit_still_counts_every_attempt(tmp_path, database_url):
    with throttled_app(tmp_path, database_url, rate_limit_login="3/minute") as (_, app):
        client = web_client(app)
        statuses = [api_login(client, f"u{n}@one.example", "guess guess guess", "10.6.0.1").status_code
                    for n in range(4)]
        assert statuses == [401, 401, 401, 429]
        client.close()


def test_web_login_from_a_known_browser_works_while_strangers_are_locked_out(tmp_path, database_url):
    with throttled_app(tmp_path, database_url, rate_limit_login="100/minute",
                       rate_limit_login_account="2/hour") as (_, app):
        browser = web_client(app)
        signed_in = web_login(browser, "viewer@one.example", headers=from_ip("10.5.0.1"))
        assert signed_in.status_code == 303
        assert browser.cookies.get("studio_device")
        browser.post("/logout", data={"csrf": browser.cookies.get("studio_csrf")},
                     headers=from_ip("10.5.0.1"))
        stranger = web_client(app)
        for n in range(2):
            assert web_login(stranger, "viewer@one.example", "guess guess guess",
                             headers=from_ip(f"10.5.1.{n}")).status_code == 401
        locked = web_login(stranger, "viewer@one.example", headers=from_ip("10.5.1.9"))
        assert locked.status_code == 429 and "Too many" in locked.text
        again = web_login(browser, "viewer@one.example", headers=from_ip("10.5.0.1"))
        assert again.status_code == 303, again.text
        browser.close()
        stranger.close()


def test_device_cookie_is_httponly_strict_and_secure_over_https(app, world):
    browser = TestClient(app, base_url="https://testserver", raise_server_exceptions=False,
                         follow_redirects=False)
    signed_in = web_login(browser, world["viewer"].email)
    assert signed_in.status_code == 303
    cookie = next(h for h in signed_in.headers.get_list("set-cookie")
                  if h.startswith("studio_device=")).lower()
    assert all(flag in cookie for flag in ("httponly", "secure", "samesite=strict", "path=/"))
    browser.close()


@pytest.mark.redis
def test_login_throttle_shared_through_redis(tmp_path, database_url):
    import redis

    url = service_url("redis")
    prefix = f"test-acct-{uuid.uuid4().hex[:8]}"
    try:
        with throttled_app(tmp_path, database_url, redis_url=url, redis_key_prefix=prefix,
                           rate_limit_login="100/minute", rate_limit_login_account="2/hour") as (c, app):
            # Two processes sharing one Redis (one event loop each, as in production).
            second = bootstrap(c.settings)
            try:
                with TestClient(app, raise_server_exceptions=False) as device, \
                        TestClient(_with_client_ip(create_app(second)),
                                   raise_server_exceptions=False) as stranger:
                    assert api_login(device, "viewer@one.example", TEST_PASSWORD,
                                     "10.4.0.1").status_code == 200
                    for n in range(2):
                        assert api_login(stranger, "viewer@one.example", "guess guess guess",
                                         f"10.4.1.{n}").status_code == 401
                    assert api_login(stranger, "viewer@one.example", TEST_PASSWORD,
                                     "10.4.1.9").status_code == 429
                    assert api_login(device, "viewer@one.example", TEST_PASSWORD,
                                     "10.4.0.1").status_code == 200
            finally:
                second.close()
    finally:
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


# == 7. Names made only of invisible characters ================================================
INVISIBLE = {
    "zero-width space": "\u200b",
    "zero-width non-joiner": "\u200c",
    "zero-width joiner": "\u200d",
    "word joiner": "\u2060",
    "byte order mark": "\ufeff",
    "soft hyphen": "\u00ad",
    "left-to-right mark": "\u200e",
    "invisible separator": "\u2063",
    "hangul filler": "\u3164",
    "braille blank": "\u2800",
    "variation selector": "\ufe0f",
    "mongolian vowel separator": "\u180e",
    "combining grapheme joiner": "\u034f",
    "tag latin a": "\U000e0041",
    "mixed with spaces": " \u200b \u2060\u00a0\ufeff ",
}


@pytest.mark.parametrize("text", list(INVISIBLE.values()), ids=list(INVISIBLE))
def test_invisible_only_names_are_refused_by_every_schema(text):
    three = text * 3
    with pytest.raises(ValidationError):
        TypeAdapter(Name).validate_python(three)
    cases = [
        (ProjectCreate, {"name": three, "framework": "SOC 2"}),
        (ProjectCreate, {"name": "Fine", "framework": three}),
        (ProjectUpdate, {"name": three}),
        (EvidenceCreate, {"title": three}),
        (EvidenceUpdate, {"title": three}),
        (UserCreate, {"email": "x@one.example", "name": three, "role": "viewer", "password": STRONG}),
        (UserUpdate, {"name": three}),
        (ApiTokenCreate, {"name": three}),
        (FrameworkDocument, {"framework": {"name": three}, "controls": [{"ref": "A", "title": "T"}]}),
        (FrameworkDocument, {"framework": {"name": "F"}, "controls": [{"ref": "A", "title": three}]}),
        (FrameworkDocument, {"framework": {"name": "F", "version": three},
                             "controls": [{"ref": "A", "title": "T"}]}),
    ]
    for model, data in cases:
        with pytest.raises(ValidationError):
            model.model_validate(data)


@pytest.mark.parametrize("text", ["\u200b\u200b", "\u2060\ufeff\u00ad", "\U000e0041\U000e0042"])
def test_invisible_only_names_are_400_on_the_api(client, world, text):
    admin = world["admin"].headers
    cases = [
        ("POST", f"{API}/projects", {"name": text, "framework": "SOC 2"}, "name"),
        ("PATCH", f"{API}/projects/{world.project_a}", {"name": text}, "name"),
        ("POST", f"{API}/projects/{world.project_a}/evidence", {"title": text}, "title"),
        ("POST", f"{API}/users", {"email": "z@one.example", "name": text, "role": "viewer",
                                  "password": STRONG}, "name"),
        ("POST", f"{API}/tokens", {"name": text}, "name"),
    ]
    for method, url, body, field in cases:
        response = client.request(method, url, headers=admin, json=body)
        assert response.status_code == 400, (url, response.text)
        assert error_of(response)["code"] == "validation_error"
        assert field_messages(response)[field] == "must contain at least one visible character"
    document = {"framework": {"name": "Ours"}, "controls": [{"ref": "A1", "title": text}]}
    imported = client.post(f"{API}/frameworks/import", headers=admin,
                           files={"file": ("f.json", json.dumps(document).encode(), "application/json")})
    assert imported.status_code == 400, imported.text


def test_visible_names_keep_their_joiners_and_lose_invisible_edges(client, world):
    admin = world["admin"].headers
    emoji = client.post(f"{API}/projects", headers=admin,
                        json={"name": "\U0001f469\u200d\U0001f4bb team", "framework": "SOC 2"})
    assert emoji.status_code == 201 and emoji.json()["data"]["name"] == "\U0001f469\u200d\U0001f4bb team"
    padded = client.post(f"{API}/projects", headers=admin,
                         json={"name": "\u200bProject Z\u2060\ufeff", "framework": "SOC 2"})
    assert padded.status_code == 201 and padded.json()["data"]["name"] == "Project Z"
    heart = client.post(f"{API}/projects", headers=admin,
                        json={"name": "Team \u2764\ufe0f", "framework": "SOC 2"})
    assert heart.status_code == 201 and heart.json()["data"]["name"] == "Team \u2764\ufe0f"
