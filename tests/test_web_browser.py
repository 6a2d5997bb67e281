"""The web UI in a real browser: Debian's chromium driven by Playwright against the app
served by uvicorn on loopback, with the demo data loaded.

Needs /usr/bin/chromium (`apt-get install -y chromium`); Playwright's own browser
downloads are never used. Skips locally when chromium is absent, fails in CI.
Screenshots go to $STUDIO_WEB_SCREENSHOTS when set (else the test's temp dir).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from studio.app import create_app
from studio.bootstrap import bootstrap
from studio.cli.demo import load_demo
from tests.conftest import IN_CI, make_settings
from tests.timing_support import wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]


@pytest.fixture
def playwright_api() -> Any:
    return sync_playwright_api()


def sync_playwright_api() -> Any:
    """Playwright's sync entry point, once chromium is known to be there (skips without it;
    with CI set, fails)."""
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail("chromium is required in CI: apt-get install -y chromium")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if IN_CI:
            pytest.fail("playwright is required in CI (pip install -e '.[test]')")
        pytest.skip("playwright not installed")
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, dict[str, tuple[str, str]]]]:
    """The app with demo data on a free loopback port; yields (base url, role -> credentials)."""
    import uvicorn

    # The demo indexes a whole catalog for the AI service; the statistical model is quick.
    monkeypatch.setenv("STUDIO_AI_EMBEDDER", "statistical")
    container = bootstrap(make_settings(tmp_path, database_url))
    credentials, _ = load_demo(container)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(container), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    # uvicorn offers a flag, not an event, for "listening".
    wait_until(lambda: server.started or not thread.is_alive(), 10, "uvicorn to start",
               interval=0.02)
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}", {role: (email, pw) for role, email, pw in credentials}
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        container.close()


def test_customer_submits_and_auditor_approves_in_a_browser(playwright_api, served, tmp_path):
    sync_playwright = playwright_api
    base, users = served
    shots = Path(os.environ.get("STUDIO_WEB_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 860})
            page = context.new_page()
            page.set_default_timeout(10_000)
            # A CSP violation or a script error shows up as a console error.
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))

            def login(role: str) -> None:
                email, password = users[role]
                page.goto(f"{base}/")
                page.fill("input[name=email]", email)
                page.fill("input[name=password]", password)
                page.click("button:has-text('Log in')")
                page.wait_for_url(f"{base}/dashboard")

            page.goto(f"{base}/login")
            page.screenshot(path=str(shots / "login.png"))
            login("customer")
            assert page.locator(".project-card").count() == 2
            page.screenshot(path=str(shots / "dashboard.png"), full_page=True)

            page.click("a:has-text('SOC 2 Type II 2026')")
            page.click("a:has-text('New evidence')")
            page.fill("input[name=title]", "Firewall ruleset export")
            page.fill("textarea[name=description]", "Export of the perimeter firewall rules, 2026-Q4.")
            page.fill("#control-search", "SC-7")
            page.check("input[name=controls][value='SC-7']")
            page.screenshot(path=str(shots / "project-new-evidence.png"), full_page=True)
            page.click("button:has-text('Create evidence')")
            page.wait_for_url("**/evidence/*?notice=created")
            assert page.locator("h1").inner_text() == "Firewall ruleset export"
            evidence_url = page.url.split("?")[0]
            page.click("button:has-text('Submit for review')")
            page.wait_for_selector(".page-head .badge-in_review")
            page.screenshot(path=str(shots / "evidence-submitted.png"), full_page=True)
            page.click("button:has-text('Log out')")
            page.wait_for_url("**/login?notice=logged_out")

            login("auditor")
            page.click("a:has-text('SOC 2 Type II 2026')")
            page.click(".tabs a:has-text('In review')")
            page.click("a:has-text('Firewall ruleset export')")
            assert page.url.split("?")[0] == evidence_url
            page.fill("textarea[name=comment]", "Rules match the approved baseline.")
            page.screenshot(path=str(shots / "evidence-review.png"), full_page=True)
            page.click("button[value=approved]")
            page.wait_for_selector(".page-head .badge-approved")
            assert "Rules match the approved baseline." in page.inner_text(".timeline")
            page.screenshot(path=str(shots / "evidence-approved.png"), full_page=True)

            page.click("button:has-text('Log out')")
            login("admin")
            page.click("nav a:has-text('Users')")
            viewer_email = users["viewer"][0]
            row = page.locator("tr", has_text=viewer_email)
            row.locator("select[name=role]").select_option("auditor")
            row.locator("button:has-text('Change')").click()
            page.wait_for_selector("text=Role changed")
            assert page.locator("tr", has_text=viewer_email).locator("select[name=role]").input_value() == "auditor"
            page.screenshot(path=str(shots / "users.png"), full_page=True)
            assert problems == []
            page.goto(f"{base}/evidence/00000000-0000-4000-8000-000000000000")
            assert "Not found" in page.inner_text("h1")
            # The browser logs the 404 status of the page itself; nothing else may appear.
            assert len(problems) == 1 and "404" in problems[0], problems
            problems.clear()
            page.screenshot(path=str(shots / "not-found.png"))

            page.set_viewport_size({"width": 390, "height": 844})
            page.goto(f"{base}/dashboard")
            for name, url in (("dashboard", "/dashboard"), ("project", None), ("users", "/users"),
                              ("evidence", evidence_url.removeprefix(base))):
                if url is None:
                    page.click("a:has-text('SOC 2 Type II 2026')")
                else:
                    page.goto(base + url)
                page.screenshot(path=str(shots / f"mobile-{name}.png"), full_page=True)
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 390, f"{name} scrolls sideways on a phone ({width}px)"
            context.close()
        finally:
            browser.close()
    assert problems == []
