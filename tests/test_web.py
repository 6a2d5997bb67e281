"""The web pages: login and sessions, CSRF, every page for every role, permissions shown
and enforced, escaping, and errors rendered as pages."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from studio.app import create_app
from studio.bootstrap import bootstrap
from studio.domains.evidence.schemas import EvidenceCreate
from studio.permissions import Role, allowed
from tests.conftest import TEST_PASSWORD, World, make_settings

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
BOTH_BACKENDS = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


class Browser:
    """A cookie-keeping client logged in as one user."""

    def __init__(self, app: Any, base_url: str = "http://testserver"):
        self.client = TestClient(app, base_url=base_url, raise_server_exceptions=False,
                                 follow_redirects=False)

    def login(self, email: str, password: str = TEST_PASSWORD, next_url: str = "") -> Any:
        page = self.client.get("/login")
        assert page.status_code == 200
        return self.client.post("/login", data={"email": email, "password": password,
                                                "csrf": csrf_of(page.text), "next": next_url})

    def set_cookie(self, name: str, value: str) -> None:
        for cookie in list(self.client.cookies.jar):
            if cookie.name == name:
                self.client.cookies.delete(name, domain=cookie.domain, path=cookie.path)
        self.client.cookies.set(name, value)

    def get(self, url: str) -> Any:
        return self.client.get(url)

    def post_form(self, page_url: str, action: str, data: dict[str, str]) -> Any:
        """Post a form the way a browser does: with the CSRF token of the page it is on."""
        page = self.client.get(page_url)
        assert page.status_code == 200, page.text
        return self.client.post(action, data={"csrf": csrf_of(page.text), **data})


@pytest.fixture
def browser(app: Any) -> Iterator[Any]:
    made: list[Browser] = []

    def make(role: str | None = None, world: World | None = None) -> Browser:
        b = Browser(app)
        made.append(b)
        if role is not None:
            assert world is not None
            response = b.login(world[role].email)
            assert response.status_code == 303, response.text
        return b

    yield make
    for b in made:
        b.client.close()


def make_evidence(container: Any, world: World, role: str = "customer", **fields: Any) -> dict[str, Any]:
    body = EvidenceCreate(**{"title": "Access review", "controlId": "AC-2", **fields})
    return container.evidence.create(world[role].principal, world.project_a, body)


def set_cookie_headers(response: Any) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


# -- login, sessions ------------------------------------------------------------------
@SQLITE_ONLY
def test_login_sets_httponly_session_and_csrf_cookies(browser, world):
    b = browser()
    response = b.login(world["customer"].email)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    cookies = set_cookie_headers(response)
    session = cookies["studio_session"].lower()
    assert "httponly" in session and "samesite=lax" in session and "path=/" in session
    assert "secure" not in session  # plain http: a Secure cookie would never come back
    assert "httponly" not in cookies["studio_csrf"].lower()  # scripts copy it into X-CSRF-Token
    dashboard = b.get("/dashboard")
    assert dashboard.status_code == 200
    assert "customer one" in dashboard.text and "Project A" in dashboard.text
    assert "Project B" not in dashboard.text  # not a member


@SQLITE_ONLY
def test_cookies_are_secure_over_https(app, world):
    b = Browser(app, base_url="https://testserver")
    response = b.login(world["viewer"].email)
    assert response.status_code == 303
    cookies = set_cookie_headers(response)
    assert "secure" in cookies["studio_session"].lower()
    assert "secure" in cookies["studio_csrf"].lower()
    b.client.close()


@SQLITE_ONLY
def test_wrong_password_shows_a_message_and_no_session(browser, world):
    b = browser()
    response = b.login(world["customer"].email, "not the password")
    assert response.status_code == 401
    assert "e-mail address or password is wrong" in response.text
    assert "studio_session" not in set_cookie_headers(response)
    assert b.get("/dashboard").status_code == 303


@SQLITE_ONLY
def test_login_without_csrf_token_is_refused(browser, world):
    b = browser()
    b.get("/login")
    response = b.client.post("/login", data={"email": world["customer"].email, "password": TEST_PASSWORD})
    assert response.status_code == 403
    assert "studio_session" not in set_cookie_headers(response)


@SQLITE_ONLY
def test_pages_without_session_redirect_to_login(browser):
    b = browser()
    assert b.get("/").headers["location"] == "/login"
    response = b.get("/projects/" + str(uuid.uuid4()))
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=%2Fprojects%2F")


@SQLITE_ONLY
def test_login_returns_to_the_page_asked_for_but_never_off_site(browser, world):
    b = browser()
    target = f"/projects/{world.project_a}"
    assert b.login(world["viewer"].email, next_url=target).headers["location"] == target
    other = browser()
    assert other.login(world["viewer"].email, next_url="//evil.example/x").headers["location"] == "/dashboard"


@SQLITE_ONLY
def test_logout_ends_the_session_for_pages_and_api(browser, world):
    b = browser("manager", world)
    old_cookie = b.client.cookies.get("studio_session")
    response = b.post_form("/dashboard", "/logout", {})
    assert response.status_code == 303 and response.headers["location"] == "/login?notice=logged_out"
    assert b.client.cookies.get("studio_session") is None
    fresh = browser()
    fresh.set_cookie("studio_session", old_cookie)
    assert fresh.get("/dashboard").status_code == 303
    assert fresh.get("/api/v1/projects").status_code == 401


@SQLITE_ONLY
def test_expired_session_cookie_redirects_with_a_notice(browser, world, container):
    actor = world["viewer"]
    b = browser("viewer", world)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    session_id = container.tokens.verify(b.client.cookies.get("studio_session")).session_id
    expired, _ = container.tokens.issue(actor.user_id, world.org_id, session_id, now=past,
                                        ttl=dt.timedelta(minutes=5))
    b.set_cookie("studio_session", expired)
    response = b.get("/dashboard")
    assert response.status_code == 303
    assert "notice=expired" in response.headers["location"]
    assert "session has ended" in b.get(response.headers["location"]).text


@SQLITE_ONLY
def test_an_active_session_is_renewed_and_a_fresh_one_is_left_alone(browser, world, container):
    b = browser("viewer", world)
    assert "studio_session" not in set_cookie_headers(b.get("/dashboard"))
    session_id = container.tokens.verify(b.client.cookies.get("studio_session")).session_id
    idle = dt.timedelta(seconds=container.settings.web_session_idle_seconds)
    older = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    token, _ = container.tokens.issue(world["viewer"].user_id, world.org_id, session_id, now=older, ttl=idle)
    b.set_cookie("studio_session", token)
    renewed = set_cookie_headers(b.get("/dashboard"))["studio_session"]
    new_token = renewed.split("=", 1)[1].split(";", 1)[0]
    claims = container.tokens.verify(new_token)
    assert claims.session_id == session_id
    assert claims.expires_at > dt.datetime.now(dt.UTC) + idle - dt.timedelta(minutes=1)


@BOTH_BACKENDS
def test_session_deadline_is_the_login_families_expiry_until_logout(container, world):
    def parse(value: str) -> dt.datetime:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))

    pair = container.auth.login(world["viewer"].email, TEST_PASSWORD)
    session_id = container.tokens.verify(pair["accessToken"]).session_id
    assert container.auth.session_deadline(session_id) == parse(pair["refreshExpiresAt"])
    rotated = container.auth.refresh(pair["refreshToken"])
    assert container.auth.session_deadline(session_id) == parse(rotated["refreshExpiresAt"])
    container.auth.logout(world["viewer"].principal, session_id, None)
    assert container.auth.session_deadline(session_id) is None
    assert container.auth.session_deadline(uuid.uuid4()) is None


# -- CSRF -------------------------------------------------------------------------------
@SQLITE_ONLY
def test_form_posts_without_a_valid_csrf_token_are_refused(browser, world, container):
    customer = browser("customer", world)
    action = f"/projects/{world.project_a}/evidence"
    missing = customer.client.post(action, data={"title": "Forged"})
    assert missing.status_code == 403 and "did not come from this site" in missing.text
    # A token from another session (planted or stolen) does not verify either.
    other = browser("manager", world)
    foreign = csrf_of(other.get("/dashboard").text)
    customer.set_cookie("studio_csrf", foreign)
    planted = customer.client.post(action, data={"title": "Forged", "csrf": foreign})
    assert planted.status_code == 403
    items, _ = container.evidence.list_for_project(world["admin"].principal, world.project_a,
                                                   cursor=None, limit=10, sort="created_at", desc=True)
    assert items == []


@SQLITE_ONLY
def test_cookie_session_on_the_api_needs_the_csrf_header(browser, world):
    b = browser("customer", world)
    assert b.get("/api/v1/projects").status_code == 200
    url = f"/api/v1/projects/{world.project_a}/evidence"
    refused = b.client.post(url, json={"title": "Via API"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    accepted = b.client.post(url, json={"title": "Via API"},
                             headers={"X-CSRF-Token": b.client.cookies.get("studio_csrf")})
    assert accepted.status_code == 201, accepted.text


# -- pages per role -----------------------------------------------------------------------
@pytest.mark.parametrize("role", [r.value for r in Role])
@SQLITE_ONLY
def test_every_page_renders_for_every_role(browser, world, container, role):
    evidence = make_evidence(container, world)
    b = browser(role, world)
    for url in ("/dashboard", f"/projects/{world.project_a}", f"/evidence/{evidence['id']}"):
        page = b.get(url)
        assert page.status_code == 200, (url, page.text)
        assert page.headers["content-type"].startswith("text/html")
        assert "Access review" in page.text or url == "/dashboard"
    users = b.get("/users")
    if allowed(role, "users.read"):
        assert users.status_code == 200 and "viewer@one.example" in users.text
        assert 'href="/users"' in b.get("/dashboard").text
    else:
        assert users.status_code == 403 and "Not allowed" in users.text
        assert 'href="/users"' not in b.get("/dashboard").text


@SQLITE_ONLY
def test_pages_carry_a_strict_csp_and_no_inline_script_or_style(browser, world, container):
    evidence = make_evidence(container, world, role="manager")
    anonymous = browser()
    admin = browser("admin", world)
    pages = [anonymous.get("/login")] + [
        admin.get(url) for url in ("/dashboard", f"/projects/{world.project_a}",
                                   f"/evidence/{evidence['id']}", "/users", f"/evidence/{uuid.uuid4()}")
    ]
    for page in pages:
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
        assert re.search(r"<script(?![^>]*\ssrc=)", page.text) is None  # only external scripts
        assert re.search(r"<style|\sstyle\s*=", page.text) is None
        assert re.search(r"<[^>]*\son[a-z]+\s*=", page.text) is None


# -- the workflow and who may do what --------------------------------------------------
@BOTH_BACKENDS
def test_create_submit_and_approve_through_the_pages(browser, world):
    customer = browser("customer", world)
    project_url = f"/projects/{world.project_a}"
    assert "New evidence" in customer.get(project_url).text
    created = customer.post_form(project_url, f"{project_url}/evidence",
                                 {"title": "Firewall rules export", "controlId": "SEED-1",
                                  "description": "<p>Exported <b>today</b></p>", "effectiveDate": "2026-01-01"})
    assert created.status_code == 303, created.text
    evidence_url = created.headers["location"].split("?")[0]
    page = customer.get(created.headers["location"])
    assert "Evidence created" in page.text and "Submit for review" in page.text
    assert "<b>today</b>" in page.text  # sanitized rich text renders as HTML
    submitted = customer.post_form(evidence_url, f"{evidence_url}/submit", {})
    assert submitted.status_code == 303
    page = customer.get(evidence_url)
    assert "In review" in page.text and "Submit for review" not in page.text
    assert 'value="approved"' not in page.text  # customers do not decide

    auditor = browser("auditor", world)
    dashboard = auditor.get("/dashboard").text
    assert "Awaiting your review" in dashboard
    page = auditor.get(evidence_url).text
    assert 'value="approved"' in page and 'value="rejected"' in page
    approved = auditor.post_form(evidence_url, f"{evidence_url}/review",
                                 {"decision": "approved", "comment": "Matches the ruleset"})
    assert approved.status_code == 303
    page = auditor.get(evidence_url).text
    assert "Approved" in page and "Matches the ruleset" in page and 'value="approved"' not in page
    listing = customer.get(f"{project_url}?status=approved").text
    assert "Firewall rules export" in listing


@SQLITE_ONLY
def test_reject_needs_a_comment_and_keeps_the_form(browser, world, container):
    evidence = make_evidence(container, world)
    container.evidence.submit(world["customer"].principal, uuid.UUID(evidence["id"]))
    auditor = browser("auditor", world)
    url = f"/evidence/{evidence['id']}"
    response = auditor.post_form(url, f"{url}/review", {"decision": "rejected", "comment": "  "})
    assert response.status_code == 400
    assert "rejection needs a comment" in response.text
    assert container.evidence.get(world["admin"].principal, uuid.UUID(evidence["id"]))["status"] == "in_review"


@SQLITE_ONLY
def test_viewer_sees_no_actions_and_is_refused_each_one(browser, world, container):
    evidence = make_evidence(container, world)
    viewer = browser("viewer", world)
    project_url = f"/projects/{world.project_a}"
    assert "New evidence" not in viewer.get(project_url).text
    refused = viewer.post_form(project_url, f"{project_url}/evidence", {"title": "Sneaky"})
    assert refused.status_code == 403
    url = f"/evidence/{evidence['id']}"
    page = viewer.get(url).text
    assert "Submit for review" not in page and 'value="approved"' not in page
    assert viewer.post_form(url, f"{url}/submit", {}).status_code == 403
    container.evidence.submit(world["customer"].principal, uuid.UUID(evidence["id"]))
    assert viewer.post_form(url, f"{url}/review", {"decision": "approved"}).status_code == 403
    assert container.evidence.get(world["admin"].principal, uuid.UUID(evidence["id"]))["status"] == "in_review"


@SQLITE_ONLY
def test_nobody_is_offered_or_allowed_to_review_their_own_evidence(browser, world, container):
    evidence = make_evidence(container, world, role="manager")
    container.evidence.submit(world["manager"].principal, uuid.UUID(evidence["id"]))
    manager = browser("manager", world)
    url = f"/evidence/{evidence['id']}"
    page = manager.get(url).text
    assert 'value="approved"' not in page and "another reviewer decides" in page
    response = manager.post_form(url, f"{url}/review", {"decision": "approved", "comment": "mine"})
    assert response.status_code == 403 and "Nobody reviews their own evidence" in response.text


@SQLITE_ONLY
def test_customer_is_not_offered_review_on_others_evidence(browser, world, container):
    evidence = make_evidence(container, world, role="manager")
    container.evidence.submit(world["manager"].principal, uuid.UUID(evidence["id"]))
    customer = browser("customer", world)
    url = f"/evidence/{evidence['id']}"
    assert 'value="approved"' not in customer.get(url).text
    assert customer.post_form(url, f"{url}/review", {"decision": "approved"}).status_code == 403


@SQLITE_ONLY
def test_role_change_takes_effect_on_the_next_page(browser, world):
    customer = browser("customer", world)
    project_url = f"/projects/{world.project_a}"
    assert "New evidence" in customer.get(project_url).text
    admin = browser("admin", world)
    changed = admin.post_form("/users", f"/users/{world['customer'].user_id}/role", {"role": "viewer"})
    assert changed.status_code == 303
    assert "Role changed" in admin.get(changed.headers["location"]).text
    # The project role is the member role, but the organization role gates the users page.
    assert customer.get("/users").status_code == 403
    admin.post_form("/users", f"/users/{world['customer'].user_id}/role", {"role": "manager"})
    assert customer.get("/users").status_code == 200


@SQLITE_ONLY
def test_deactivated_user_is_logged_out(browser, world, container):
    customer = browser("customer", world)
    assert customer.get("/dashboard").status_code == 200
    container.users.delete(world["admin"].principal, world["customer"].user_id)
    response = customer.get("/dashboard")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


# -- users page -------------------------------------------------------------------------
@SQLITE_ONLY
def test_admin_creates_a_user_who_can_then_log_in(browser, world):
    admin = browser("admin", world)
    created = admin.post_form("/users", "/users", {"name": "New Auditor", "email": "new.auditor@one.example",
                                                   "role": "auditor", "password": "a long enough password"})
    assert created.status_code == 303, created.text
    assert "new.auditor@one.example" in admin.get("/users").text
    fresh = browser()
    assert fresh.login("new.auditor@one.example", "a long enough password").status_code == 303


@SQLITE_ONLY
def test_user_form_errors_are_shown_with_the_input_kept(browser, world):
    admin = browser("admin", world)
    response = admin.post_form("/users", "/users", {"name": "Shorty", "email": "not-an-email",
                                                    "role": "auditor", "password": "short"})
    assert response.status_code == 400
    assert "E-mail" in response.text and "Password" in response.text
    assert 'value="Shorty"' in response.text
    duplicate = admin.post_form("/users", "/users", {"name": "Dup", "email": world["viewer"].email,
                                                     "role": "viewer", "password": "a long enough password"})
    assert duplicate.status_code == 409 and "already exists" in duplicate.text


@SQLITE_ONLY
def test_admin_cannot_grant_super_admin_nor_change_own_role(browser, world):
    admin = browser("admin", world)
    page = admin.get("/users").text
    assert 'value="super_admin"' not in page
    assert f'/users/{world["admin"].user_id}/role' not in page
    grant = admin.post_form("/users", f"/users/{world['viewer'].user_id}/role", {"role": "super_admin"})
    assert grant.status_code == 403
    own = admin.post_form("/users", f"/users/{world['admin'].user_id}/role", {"role": "viewer"})
    assert own.status_code == 409


@SQLITE_ONLY
def test_manager_reads_users_but_cannot_manage_them(browser, world):
    manager = browser("manager", world)
    page = manager.get("/users").text
    assert "viewer@one.example" in page and "New user" not in page and "/role" not in page
    refused = manager.post_form("/users", "/users", {"name": "X", "email": "x@one.example",
                                                     "role": "viewer", "password": "a long enough password"})
    assert refused.status_code == 403


# -- escaping, lists, errors ------------------------------------------------------------------
@SQLITE_ONLY
def test_titles_and_descriptions_cannot_inject_script(browser, world, container):
    evidence = make_evidence(container, world, title="<script>alert(1)</script>",
                             description='<img src=x onerror="alert(2)"><p>ok</p><script>alert(3)</script>')
    b = browser("viewer", world)
    for url in (f"/projects/{world.project_a}", f"/evidence/{evidence['id']}"):
        page = b.get(url).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<script>alert" not in page and "onerror" not in page


@SQLITE_ONLY
def test_evidence_list_pages_with_a_next_link_and_filters(browser, world, container):
    for i in range(23):
        make_evidence(container, world, title=f"Item {i:02d}")
    b = browser("viewer", world)
    first = b.get(f"/projects/{world.project_a}").text
    assert first.count('href="/evidence/') == 20 and "Item 22" in first and "Item 02" not in first
    next_url = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = b.get(next_url).text
    assert second.count('href="/evidence/') == 3 and "Item 00" in second
    assert 'rel="next"' not in second and "First page" in second
    assert 'href="/evidence/' not in b.get(f"/projects/{world.project_a}?status=approved").text


@SQLITE_ONLY
def test_missing_and_foreign_objects_are_friendly_404_pages(browser, world):
    b = browser("admin", world)
    for url in (f"/evidence/{uuid.uuid4()}", "/evidence/not-a-uuid", f"/projects/{world.project_c}"):
        page = b.get(url)
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
        assert "Not found" in page.text and "Reference:" in page.text
    bad_cursor = b.get(f"/projects/{world.project_a}?cursor=garbage")
    assert bad_cursor.status_code == 400 and "Traceback" not in bad_cursor.text


@SQLITE_ONLY
def test_an_unexpected_failure_is_a_page_not_a_stack_trace(browser, world, container, monkeypatch):
    b = browser("viewer", world)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(container.projects, "list", broken)
    page = b.get("/dashboard")
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in page.text and "secret internals" not in page.text


@BOTH_BACKENDS
def test_dashboard_counts_evidence_by_status(browser, world, container):
    for _ in range(2):
        make_evidence(container, world)
    submitted = make_evidence(container, world)
    container.evidence.submit(world["customer"].principal, uuid.UUID(submitted["id"]))
    counts = container.evidence.status_counts(world["viewer"].principal, [world.project_a, world.project_b])
    assert counts == {world.project_a: {"pending": 2, "in_review": 1}}
    page = browser("viewer", world).get("/dashboard").text
    assert "3 evidence items" in page and "2 pending" in page and "1 in review" in page


@SQLITE_ONLY
def test_web_login_shares_the_login_rate_limit(tmp_path, database_url):
    # A day-long window: the sliding-window counter lets a hit through right after a
    # window boundary, which a per-minute limit would hit in one run of sixty.
    settings = make_settings(tmp_path, database_url, rate_limit_enabled=True, rate_limit_login="2/day")
    c = bootstrap(settings)
    try:
        from tests.conftest import seed_world

        world = seed_world(c)
        b = Browser(create_app(c))
        assert b.login(world["viewer"].email, "wrong").status_code == 401
        assert b.login(world["viewer"].email, "wrong").status_code == 401
        limited = b.login(world["viewer"].email)
        assert limited.status_code == 429 and "Too many login attempts" in limited.text
        b.client.close()
    finally:
        c.close()
