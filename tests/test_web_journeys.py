"""The three journeys of issue 14 in a real browser, each as the role that does it:
projects (manager), evidence with files (customer), review (auditor). Debian's chromium
driven by Playwright against the app on loopback, with the demo data and the workers
running (uploaded files get processed while the test watches).

Elements are found by role and accessible name; each result is checked on the page and
through the services. A role that may not act gets no control and a 403 page by URL.
Screenshots at 1280×800 and 360×740 go to $STUDIO_WEB_SCREENSHOTS when set; every
screenshot point also checks that nothing scrolls sideways at 360 px.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the chromium fixture skips (or fails in CI) with what to install
    expect = None

from studio.app import create_app
from studio.bootstrap import Container, bootstrap
from studio.cli.demo import demo_pdf, demo_png, load_demo
from studio.domains.evidence.schemas import EvidenceCreate
from studio.principal import Principal
from tests.conftest import make_settings
from tests.test_web_browser import CHROMIUM, CHROMIUM_ARGS, _free_port, sync_playwright_api
from tests.timing_support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]

UPLOAD_LIMIT = 256 * 1024  # small, so a file over the limit is quick to make
WIDE, NARROW = {"width": 1280, "height": 800}, {"width": 360, "height": 740}


@dataclass
class Site:
    base: str
    users: dict[str, tuple[str, str]]
    c: Container

    def principal(self, role: str) -> Principal:
        found = self.c.auth.acting_as(self.users[role][0], "test")
        assert found is not None
        return found

    def project_id(self, name: str) -> uuid.UUID:
        items, _ = self.c.projects.list(self.principal("admin"), cursor=None, limit=50, sort="name", desc=False)
        return uuid.UUID(next(p["id"] for p in items if p["name"] == name))


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One browser for the module (each test gets its own context)."""
    with sync_playwright_api()() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def site(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """The app with the demo data and its workers, on a free loopback port."""
    import uvicorn

    monkeypatch.setenv("STUDIO_AI_EMBEDDER", "statistical")
    container = bootstrap(make_settings(tmp_path, database_url, max_upload_bytes=UPLOAD_LIMIT))
    credentials, _ = load_demo(container)
    container.dispatcher.start()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(container), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), 10, "uvicorn to start", interval=0.02)
    try:
        yield Site(f"http://127.0.0.1:{port}", {r: (e, p) for r, e, p in credentials}, container)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        container.close()


@pytest.fixture
def page(chromium: Any, site: Site, tmp_path: Path) -> Iterator[Any]:
    """A fresh browser context; console errors and script errors fail the test."""
    context = chromium.new_context(viewport=WIDE)
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    tab.problems = []
    # A CSP violation or a script error shows up here; an error status of the page itself
    # (the 403 and 404 pages) is logged too and filtered by the tests that cause one.
    tab.on("console", lambda m: tab.problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.problems.append(str(e)))
    yield tab
    context.close()


def login(page: Any, site: Site, role: str) -> None:
    email, password = site.users[role]
    page.goto(f"{site.base}/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{site.base}/dashboard")


def logout(page: Any) -> None:
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login?notice=logged_out")


def shooter(page: Any) -> Callable[..., None]:
    """shot(name): check the page at 360 px (nothing sideways) and, with
    $STUDIO_WEB_SCREENSHOTS set, save what a person sees first at 1280×800 and at 360×740
    (`at`: scrolled to that element instead of the top)."""
    folder = os.environ.get("STUDIO_WEB_SCREENSHOTS")
    out = Path(folder) if folder else None
    if out:
        out.mkdir(parents=True, exist_ok=True)

    def shot(name: str, at: Any = None) -> None:
        for size, suffix in ((WIDE, "1280"), (NARROW, "360")):
            page.set_viewport_size(size)
            if size is NARROW:
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= NARROW["width"], f"{name} scrolls sideways at 360 px ({width} px)"
            if not out:
                continue
            if at is not None:
                at.evaluate("e => e.scrollIntoView({block: 'start'})")
                if at.evaluate("e => e.matches('iframe.preview-pdf')"):
                    page.wait_for_timeout(1500)  # Chromium's PDF viewer paints once in view
            else:
                page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(out / f"{name}-{suffix}.png"))
        page.set_viewport_size(WIDE)

    return shot


def flash(page: Any, text: str) -> None:
    assert text in page.get_by_role("status").inner_text()


def forbidden(page: Any, url: str) -> None:
    response = page.goto(url)
    assert response.status == 403, url
    assert page.get_by_role("heading", level=1).inner_text() == "Not allowed"
    page.problems[:] = [p for p in page.problems if "403" not in p]


# -- journey 1: projects, as a manager -----------------------------------------------------------
def test_manager_creates_and_runs_a_project(page, site):
    shot = shooter(page)
    login(page, site, "manager")
    shot("dashboard")
    page.get_by_role("link", name=re.compile("New project")).click()
    page.get_by_label("Name", exact=True).fill("ISO readiness 2027")
    page.get_by_role("button", name="Create project").click()
    # No framework chosen: refused, with the summary linking to the field.
    summary = page.get_by_role("alert")
    assert "Choose a framework from the catalog" in summary.inner_text()
    assert page.get_by_label("Name", exact=True).input_value() == "ISO readiness 2027"
    page.problems[:] = [p for p in page.problems if "400" not in p]  # the page's own status
    shot("project-new-error")

    search = page.get_by_label("Search frameworks by name")
    search.fill("hipaa")
    assert page.get_by_text("No framework in the catalog matches").is_visible()
    search.fill("800-53")
    nist = page.get_by_role("radio", name=re.compile("NIST SP 800-53 rev5 MODERATE"))
    option = page.locator("label.option", has=nist)
    assert "287 controls" in option.inner_text() and "Version 5.1.1" in option.inner_text()
    nist.check()
    page.get_by_label("Description").fill("Certification readiness for the new data centre.")
    shot("project-new")
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url("**/members?notice=project_created")
    flash(page, "Project created")
    pid = uuid.UUID(page.url.split("/projects/")[1].split("/")[0])
    manager = site.principal("manager")
    project = site.c.projects.get(manager, pid)
    assert project["frameworkVersionId"] and project["myRole"] == "manager"
    # The framework shows by name; its key is never on the page.
    assert "NIST SP 800-53 rev5 MODERATE" in page.locator(".framework").inner_text()
    assert "nist-800-53-rev5-moderate" not in page.content()

    # Members: add the customer, change their role, then remove them.
    page.get_by_label("Person").select_option(label=f"Demo Customer ({site.users['customer'][0]})")
    page.get_by_label("Role in this project").select_option("customer")
    page.get_by_role("button", name="Add member").click()
    flash(page, "Member saved")
    row = page.get_by_role("row", name=re.compile("Demo Customer"))
    row.get_by_label("Project role of Demo Customer").select_option("viewer")
    row.get_by_role("button", name="Change role of Demo Customer").click()
    flash(page, "Member saved")
    members, _ = site.c.projects.members(manager, pid, cursor=None, limit=50)
    assert {m["email"]: m["role"] for m in members}[site.users["customer"][0]] == "viewer"
    shot("members")
    page.get_by_role("link", name="Remove Demo Customer").click()
    assert "Remove Demo Customer" in page.get_by_role("heading", level=1).inner_text()
    shot("member-remove")
    page.get_by_role("button", name="Remove member").click()
    flash(page, "Member removed")
    members, _ = site.c.projects.members(manager, pid, cursor=None, limit=50)
    assert site.users["customer"][0] not in {m["email"] for m in members}

    # Settings: rename.
    page.get_by_role("navigation", name="Project sections").get_by_role("link", name="Settings").click()
    page.get_by_label("Name", exact=True).fill("ISO 27001 readiness 2027")
    page.get_by_role("button", name="Save project details").click()
    flash(page, "Project details saved")
    assert site.c.projects.get(manager, pid)["name"] == "ISO 27001 readiness 2027"
    shot("project-settings")

    # Controls: AC-2 not applicable with a justification, then counted again.
    page.get_by_role("navigation", name="Project sections").get_by_role("link", name="Controls").click()
    page.get_by_label("Search controls by id or title").fill("AC-2")
    page.get_by_label("Search controls by id or title").press("Enter")
    page.get_by_text("Not applicable… AC-2", exact=True).click()
    reason = page.get_by_label("Why AC-2 does not apply")
    page.get_by_role("button", name="Mark not applicable").first.click()
    assert reason.evaluate("e => !e.validity.valid")  # a justification is required
    reason.fill("Accounts are managed by the parent company's directory.")
    shot("controls")
    page.get_by_role("button", name="Mark not applicable").first.click()
    flash(page, "Control marked not applicable")
    statuses = {c["label"]: c for c in site.c.compliance.control_statuses(manager, pid)}
    assert statuses["AC-2"]["status"] == "not_applicable"
    assert statuses["AC-2"]["reason"] == "Accounts are managed by the parent company's directory."
    assert "AC-2" in page.url or "q=AC-2" in page.url  # back on the same search
    page.get_by_role("button", name="Count it again for AC-2").click()
    flash(page, "Control counts again")
    statuses = {c["label"]: c for c in site.c.compliance.control_statuses(manager, pid)}
    assert statuses["AC-2"]["status"] == "missing"

    # Archive, after a confirmation page.
    page.get_by_role("navigation", name="Project sections").get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="Archive project…").click()
    shot("project-archive")
    page.get_by_role("button", name="Archive project").click()
    flash(page, "Project archived")
    assert site.c.projects.get(manager, pid)["status"] == "archived"
    assert page.get_by_role("link", name=re.compile("New evidence")).count() == 0
    assert page.problems == []

    # A customer sees none of the managing controls and gets 403 pages by URL.
    logout(page)
    login(page, site, "customer")
    assert page.get_by_role("link", name=re.compile("New project")).count() == 0
    demo = site.project_id("FedRAMP Moderate readiness")
    page.goto(f"{site.base}/projects/{demo}")
    tabs = page.get_by_role("navigation", name="Project sections")
    assert tabs.get_by_role("link", name="Settings").count() == 0
    assert tabs.get_by_role("link", name="Members").count() == 0
    page.goto(f"{site.base}/projects/{demo}/controls")
    assert page.get_by_text("Not applicable…").count() == 0
    for url in ("/projects/new", f"/projects/{demo}/settings", f"/projects/{demo}/members",
                f"/projects/{demo}/archive"):
        forbidden(page, site.base + url)
    shot("forbidden")
    assert page.problems == []


# -- journey 2: evidence with files, as a customer -----------------------------------------------
def _drop(page: Any, field_label: str, name: str, data: bytes, mime: str) -> None:
    """Drop a file on the drop zone around the file field labelled `field_label`."""
    transfer = page.evaluate_handle(
        """([name, b64, type]) => {
            const bytes = Uint8Array.from(atob(b64), ch => ch.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type }));
            return transfer;
        }""", [name, base64.b64encode(data).decode(), mime])
    zone = page.get_by_label(field_label).locator("xpath=ancestor::*[@data-dropzone][1]")
    zone.dispatch_event("dragover", {"dataTransfer": transfer})
    zone.dispatch_event("drop", {"dataTransfer": transfer})


def test_customer_adds_evidence_with_files(page, site, tmp_path):
    shot = shooter(page)
    customer = site.principal("customer")
    pid = site.project_id("FedRAMP Moderate readiness")
    uploads: list[Any] = []
    page.on("request", lambda r: uploads.append(r) if r.method == "POST" and "/evidence" in r.url else None)

    login(page, site, "customer")
    page.get_by_role("link", name="FedRAMP Moderate readiness").first.click()
    shot("project")
    page.get_by_role("link", name=re.compile("New evidence")).click()
    assert "each at most 256 KB" in page.get_by_text("Accepted:").inner_text()
    page.get_by_label("Title").fill("Account review, November")
    page.get_by_label("Description").fill("Quarterly review of privileged accounts, signed off.")

    files = tmp_path / "files"
    files.mkdir()
    (files / "review.pdf").write_bytes(demo_pdf("Account review", ["All 42 accounts reviewed."]))
    (files / "notes.txt").write_text("Reviewed by the security team.\nNo orphaned accounts.\n")
    (files / "huge.txt").write_text("x" * (UPLOAD_LIMIT + 1))
    (files / "tool.exe").write_bytes(b"MZ\x90\x00")
    page.get_by_label("Files", exact=True).set_input_files(
        [str(files / n) for n in ("review.pdf", "notes.txt", "huge.txt", "tool.exe")])
    # Refused before anything is sent, each with its reason; the others stay chosen.
    problems = page.locator("[data-file-problems]").first.inner_text()
    assert "huge.txt" in problems and "larger than the upload limit of 256 KB" in problems
    assert "tool.exe: this kind of file is not accepted" in problems
    _drop(page, "Files", "screen.png", demo_png(3, (17, 149, 107)), "image/png")
    chosen = page.get_by_role("list").filter(has_text="review.pdf")
    assert [n for n in ("review.pdf", "notes.txt", "screen.png", "huge.txt") if n in chosen.inner_text()] == [
        "review.pdf", "notes.txt", "screen.png"]

    # The control picker: by words of the title, then by id.
    finder = page.get_by_label("Find a control")
    results = page.locator("#control-results")
    finder.fill("account management")
    expect(results.get_by_role("checkbox")).to_have_count(3)
    page.get_by_role("checkbox", name=re.compile(r"^AC-2 Account Management")).check()
    finder.fill("ac-2(1)")
    expect(results.get_by_role("checkbox")).to_have_count(1)
    results.get_by_role("checkbox", name=re.compile(r"^AC-2\(1\) Automated System Account")).check()
    expect(results.get_by_role("checkbox")).to_have_count(0)
    chosen_controls = page.get_by_role("list", name="Chosen controls")
    assert chosen_controls.get_by_role("checkbox").count() == 2
    page.get_by_label("Effective date").fill("2026-11-01")
    page.get_by_label("Expires").fill("2027-10-31")
    shot("evidence-new")
    page.get_by_role("button", name="Create evidence").click()
    page.wait_for_url("**/evidence/*?notice=created")
    flash(page, "Evidence created")
    # Sent in the background (that is what drives the progress bar), as multipart.
    create = next(r for r in uploads if r.url.endswith(f"/projects/{pid}/evidence"))
    assert create.resource_type == "xhr"

    eid = uuid.UUID(page.url.split("/evidence/")[1].split("?")[0])
    evidence = site.c.evidence.get(customer, eid)
    assert (evidence["title"], evidence["controlId"], evidence["effectiveDate"], evidence["expiresAt"]) == (
        "Account review, November", "AC-2", "2026-11-01", "2027-10-31")
    assert site.c.compliance.linked_controls(customer, eid)["controlRefs"] == ["ac-2.1"]

    def processed() -> bool:
        items, _ = site.c.documents.list_for_evidence(customer, eid, cursor=None, limit=10)
        return len(items) == 3 and all(f["status"] == "processed" for f in items)

    wait_until(processed, 30, "the files to be processed")
    page.reload()
    assert page.get_by_title("Preview of review.pdf").count() == 1
    assert page.get_by_role("img", name="Preview of screen.png").is_visible()
    assert page.get_by_title("Preview of notes.txt").get_attribute("sandbox") == ""
    notes = page.get_by_role("article", name="notes.txt")
    notes.get_by_text("Extracted text · 8 words").click()
    assert "No orphaned accounts." in notes.locator("pre").inner_text()

    # A new revision of notes.txt, over a slow uplink: the progress bar says how far it got.
    page.get_by_text("Upload a new revision of notes.txt").click()
    (files / "notes-v2.txt").write_text("Reviewed again after the fix.\n" + "".join(
        f"{i:05d} account-{i:05d} reviewed ok\n" for i in range(1, 5001)))
    page.get_by_label("New revision of notes.txt").set_input_files(str(files / "notes-v2.txt"))
    devtools = page.context.new_cdp_session(page)
    devtools.send("Network.enable")
    devtools.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 48 * 1024})
    page.get_by_role("button", name="Upload revision").click()
    bar = page.get_by_role("progressbar", name="Uploading")
    expect(bar).to_be_visible()
    expect(page.locator("[data-progress-text]:visible")).to_contain_text(re.compile(r"\d+% of 15\d KB"))
    devtools.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    page.wait_for_url(re.compile(r".*notice=files_added.*"))
    flash(page, "Files uploaded")
    items, _ = site.c.documents.list_for_evidence(customer, eid, cursor=None, limit=10)
    assert sorted((f["fileName"], f["revision"]) for f in items if f["fileName"] == "notes.txt") == [
        ("notes.txt", 1), ("notes.txt", 2)]

    # A file whose content is not what its name says: refused with a clear message, nothing saved.
    (files / "contract.pdf").write_text("this is not a PDF at all\n")
    page.get_by_label("Files to add").set_input_files(str(files / "contract.pdf"))
    page.get_by_role("button", name="Upload files").click()
    summary = page.get_by_role("alert").filter(has_text="There is a problem")
    summary.wait_for()
    assert "contract.pdf: the file is a text file but its name ends in .pdf" in summary.inner_text()
    items, _ = site.c.documents.list_for_evidence(customer, eid, cursor=None, limit=10)
    assert len(items) == 4 and "contract.pdf" not in {f["fileName"] for f in items}
    shot("evidence-upload-refused", at=page.get_by_role("heading", name=re.compile(r"^Files")))
    page.problems[:] = [p for p in page.problems if "415" not in p]

    page.goto(f"{site.base}/evidence/{eid}")
    page.get_by_role("link", name="Change controls").click()
    chosen_controls = page.get_by_role("list", name="Chosen controls")
    assert chosen_controls.get_by_role("checkbox", checked=True).count() == 2
    shot("evidence-controls")
    page.get_by_role("link", name="Cancel").click()
    page.get_by_role("link", name="Edit details").click()
    assert page.get_by_label("Expires").input_value() == "2027-10-31"
    shot("evidence-edit")
    page.get_by_role("link", name="Cancel").click()
    shot("evidence-pending")
    shot("evidence-files", at=page.get_by_role("article", name="screen.png"))
    page.get_by_role("button", name="Submit for review").click()
    flash(page, "Submitted for review")
    assert site.c.evidence.get(customer, eid)["status"] == "in_review"
    assert page.get_by_role("button", name="Upload files").count() == 0  # in review: no new files
    assert page.problems == []

    # A viewer gets no way to add evidence, and a 403 page by URL.
    logout(page)
    login(page, site, "viewer")
    page.goto(f"{site.base}/projects/{pid}")
    assert page.get_by_role("link", name=re.compile("New evidence")).count() == 0
    forbidden(page, f"{site.base}/projects/{pid}/evidence/new")
    assert page.problems == []


# -- journey 3: review, as an auditor -------------------------------------------------------------
def test_auditor_reviews_with_the_files_in_view(page, site):
    shot = shooter(page)
    auditor, customer = site.principal("auditor"), site.principal("customer")
    # Evidence with an HTML file that tries to run script in the page that shows it.
    pid = site.project_id("SOC 2 Type II 2026")
    hostile = site.c.evidence.create(customer, pid, EvidenceCreate(title="Exported dashboard", controlId="AU-6"))
    hid = uuid.UUID(hostile["id"])
    writer = site.c.documents.new_writer()
    writer.write(b"<html><body><h1>Dashboard</h1><script>top.document.title='pwned'</script></body></html>")
    site.c.documents.record(customer, hid, site.c.documents.finish(writer), file_name="dashboard.html",
                            declared_type="text/html", effective_date=None)
    wait_until(lambda: site.c.documents.list_for_evidence(customer, hid, cursor=None, limit=1)[0][0]["status"]
               == "processed", 30, "the HTML file to be processed")
    site.c.evidence.submit(customer, hid)
    newest_first, _, total = site.c.evidence.review_queue(auditor, oldest_first=False, cursor=None, limit=20)
    assert total == 3

    login(page, site, "auditor")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Reviews").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Waiting for me"
    assert page.get_by_role("heading", name="3 waiting").is_visible()

    def titles() -> list[str]:
        return [t.strip() for t in page.locator("tbody td:first-child").all_inner_texts()]

    assert titles() == [e["title"] for e in newest_first]
    assert titles()[0] == "Exported dashboard"
    page.get_by_role("link", name="Oldest first").click()
    assert titles() == list(reversed([e["title"] for e in newest_first]))
    shot("reviews")

    # The HTML file is shown as text in a sandboxed frame; its script never runs.
    page.get_by_role("link", name="Review Exported dashboard").click()
    frame = page.frame_locator("iframe[title='Preview of dashboard.html']")
    assert "<script>" in frame.locator("body").inner_text()
    assert page.title() != "pwned" and "pwned" not in page.title()
    preview = page.get_by_title("Preview of dashboard.html")
    response = page.request.get(site.base + preview.get_attribute("src"))
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["content-security-policy"].startswith("sandbox")
    assert response.headers["x-content-type-options"] == "nosniff"
    page.get_by_label("Comment").fill("An export of a dashboard is not evidence of review; attach the review record.")
    page.get_by_role("button", name="Reject evidence").click()
    flash(page, "Evidence rejected")
    assert site.c.evidence.get(auditor, hid)["status"] == "rejected"

    # The access review: PDF, image and text in the page before deciding.
    page.goto(f"{site.base}/reviews")
    page.get_by_role("link", name="Review Quarterly access review Q3").click()
    assert page.get_by_title("Preview of access-review-q3.pdf").is_visible()
    assert page.get_by_role("img", name="Preview of access-review-signoff.png").is_visible()
    assert page.get_by_title("Preview of access-review-export.txt").is_visible()
    text_frame = page.frame_locator("iframe[title='Preview of access-review-export.txt']")
    assert "setting-01 = enabled" in text_frame.locator("body").inner_text()
    page.locator("details.extracted", has_text="22 words").get_by_text("Extracted text").click()
    assert "Owner: Information Security" in page.locator("details.extracted[open] pre").inner_text()
    shot("evidence-review")
    shot("evidence-review-pdf", at=page.get_by_title("Preview of access-review-q3.pdf"))
    # Rejecting needs a comment: the browser says so before sending anything.
    page.get_by_role("button", name="Reject evidence").click()
    assert page.get_by_label("Comment").evaluate("e => e.validationMessage") == "Tell the uploader what to fix."
    page.get_by_label("Comment").fill("Sign-off page present; matches the user list.")
    page.get_by_role("button", name="Approve evidence").click()
    flash(page, "Evidence approved")
    assert page.get_by_role("heading", name="Review history").is_visible()
    assert "Sign-off page present" in page.locator(".timeline").inner_text()
    q3 = next(e for e in newest_first if e["title"] == "Quarterly access review Q3")
    reviews, _ = site.c.evidence.reviews(auditor, uuid.UUID(q3["id"]), cursor=None, limit=5)
    assert [(r["decision"], r["comment"]) for r in reviews] == [
        ("approved", "Sign-off page present; matches the user list.")]
    shot("evidence-approved")

    page.goto(f"{site.base}/reviews")
    assert page.get_by_role("heading", name="1 waiting").is_visible()
    assert page.problems == []

    # A customer decides nothing: no queue, no decision buttons, 403 by URL.
    logout(page)
    login(page, site, "customer")
    assert page.get_by_role("navigation", name="Main").get_by_role("link", name="Reviews").count() == 0
    remaining = next(e for e in newest_first if e["title"] == "Baseline configuration screenshots")
    page.goto(f"{site.base}/evidence/{remaining['id']}")
    assert page.get_by_role("button", name="Approve evidence").count() == 0
    forbidden(page, f"{site.base}/reviews")
    assert page.problems == []
