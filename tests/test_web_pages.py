"""The journey pages without a browser: hand-made requests a page never sends, the headers
of file previews, uploads that leave nothing behind, the role × page matrix against the
permission table, and the review queue on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from studio.cli.demo import demo_pdf, demo_png
from studio.db.engine import make_engine
from studio.documents.detect import MIME
from studio.domains.evidence.schemas import Decision, EvidenceCreate, ReviewCreate
from studio.domains.projects.schemas import MemberAdd, ProjectCreate
from studio.permissions import ProjectRole, Role, allowed
from studio.settings import Settings
from studio.web.evidence import KIND_LABELS, PREVIEW
from tests.conftest import World, make_settings
from tests.test_web import BOTH_BACKENDS, SQLITE_ONLY, Browser, csrf_of

CATALOG = (b"ref,title,parent\n"
           b"AC,Access control,\n"
           b"AC-1,Policy and procedures,AC\n"
           b"AC-2,Account management,AC\n"
           b"AC-2.1,Automated account management,AC-2\n"
           b"AU-6,Audit record review,AC\n")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """A small upload limit: a file over it is quick to make."""
    return make_settings(tmp_path, database_url, max_upload_bytes=64 * 1024)


@pytest.fixture
def catalog_project(container: Any, world: World) -> uuid.UUID:
    """Project M on a small imported catalog, with the same members as project A."""
    container.frameworks.import_file(None, "mini.csv", CATALOG, key="mini-catalog", name="Mini catalog",
                                     version="2")
    admin = world["admin"].principal
    project = container.projects.create(admin, ProjectCreate(name="Project M", framework="mini-catalog"))
    pid = uuid.UUID(project["id"])
    for role in ("manager", "auditor", "customer", "viewer"):
        container.projects.add_member(admin, pid, MemberAdd(userId=world[role].user_id, role=ProjectRole(role)))
    return pid


@pytest.fixture
def browser(app: Any) -> Any:
    made: list[Browser] = []

    def make(role: str, world: World) -> Browser:
        b = Browser(app)
        made.append(b)
        assert b.login(world[role].email).status_code == 303
        return b

    yield make
    for b in made:
        b.client.close()


def stored_objects(container: Any) -> list[Path]:
    root = container.settings.data_dir / "objects"
    return sorted(p for p in root.rglob("*") if p.is_file())


def upload(b: Browser, page_url: str, action: str, fields: dict[str, str],
           files: list[tuple[str, bytes, str]], csrf: bool = True) -> Any:
    """Post a multipart form the way the page's form does: the CSRF token first."""
    token = csrf_of(b.get(page_url).text)
    data = {"csrf": token, **fields} if csrf else fields
    return b.client.post(action, data=data, files=[("files", f) for f in files])


# -- projects ----------------------------------------------------------------------------------
@SQLITE_ONLY
def test_a_project_on_an_unknown_framework_is_refused(browser, world, container, catalog_project):
    manager = browser("manager", world)
    before, _ = container.projects.list(world["admin"].principal, cursor=None, limit=50, sort="name", desc=False)
    for framework in ("SOC 2", str(uuid.uuid4()), ""):
        response = manager.post_form("/projects/new", "/projects", {"name": "Shadow", "framework": framework})
        assert response.status_code == 400
        assert "Choose a framework from the catalog" in response.text
        assert 'value="Shadow"' in response.text
    after, _ = container.projects.list(world["admin"].principal, cursor=None, limit=50, sort="name", desc=False)
    assert len(after) == len(before)
    catalog = container.frameworks.list(None)
    mini = next(f for f in catalog if f["key"] == "mini-catalog")
    page = manager.get("/projects/new?q=mini").text
    assert "Mini catalog" in page and "Version 2 · 5 controls" in page
    created = manager.post_form("/projects/new", "/projects", {"name": "On the catalog", "framework": mini["id"]})
    assert created.status_code == 303 and created.headers["location"].endswith("/members?notice=project_created")
    pid = created.headers["location"].split("/")[2]
    shown = manager.get(f"/projects/{pid}").text
    assert "Mini catalog · version 2" in shown and "mini-catalog" not in shown


@pytest.mark.parametrize("role", [r.value for r in Role])
@SQLITE_ONLY
def test_each_page_is_offered_and_served_only_to_roles_the_permission_table_allows(browser, world, container,
                                                                                   catalog_project, role):
    pid = catalog_project
    b = browser(role, world)
    project_role = role  # members of project M hold their organization role there
    pages = {
        "/projects/new": allowed(role, "projects.create"),
        f"/projects/{pid}/settings": allowed(project_role, "project.update"),
        f"/projects/{pid}/archive": allowed(project_role, "project.update"),
        f"/projects/{pid}/members": allowed(project_role, "project.members.read"),
        f"/projects/{pid}/evidence/new": allowed(project_role, "evidence.create"),
        "/reviews": allowed(project_role, "evidence.review"),
        f"/projects/{pid}/controls": True,
    }
    for url, may in pages.items():
        response = b.get(url)
        assert response.status_code == (200 if may else 403), (role, url)
        if not may:
            assert "Not allowed" in response.text
    project = b.get(f"/projects/{pid}").text
    assert (f'href="/projects/{pid}/settings"' in project) == allowed(project_role, "project.update")
    assert (f'href="/projects/{pid}/members"' in project) == allowed(project_role, "project.members.read")
    assert (f'href="/projects/{pid}/evidence/new"' in project) == allowed(project_role, "evidence.create")
    assert ('href="/projects/new"' in b.get("/dashboard").text) == allowed(role, "projects.create")
    controls = b.get(f"/projects/{pid}/controls").text
    assert ("Mark not applicable" in controls) == allowed(project_role, "project.controls.manage")


@SQLITE_ONLY
def test_hand_made_project_posts_of_a_customer_change_nothing(browser, world, container, catalog_project):
    pid = catalog_project
    customer = browser("customer", world)
    page = f"/projects/{pid}"
    attempts = [
        (f"{page}/settings", {"name": "Taken over", "status": "active"}),
        (f"{page}/archive", {}),
        (f"{page}/members", {"userId": str(world["customer"].user_id), "role": "manager"}),
        (f"{page}/members/{world['viewer'].user_id}/remove", {}),
        (f"{page}/controls/AC-2/applicability", {"applicable": "no", "reason": "mine"}),
    ]
    for action, data in attempts:
        assert customer.post_form(page, action, data).status_code == 403, action
    admin = world["admin"].principal
    project = container.projects.get(admin, pid)
    assert (project["name"], project["status"]) == ("Project M", "active")
    members, _ = container.projects.members(admin, pid, cursor=None, limit=20)
    assert {m["email"]: m["role"] for m in members}[world["customer"].email] == "customer"
    statuses = {c["label"]: c["status"] for c in container.compliance.control_statuses(admin, pid)}
    assert statuses["AC-2"] == "missing"


@SQLITE_ONLY
def test_not_applicable_needs_a_justification_and_can_be_undone(browser, world, container, catalog_project):
    pid = catalog_project
    manager = browser("manager", world)
    url = f"/projects/{pid}/controls?q=AC"
    refused = manager.post_form(url, f"/projects/{pid}/controls/AC-2/applicability",
                                {"applicable": "no", "reason": "  ", "back": url})
    assert refused.status_code == 400
    assert "Say why the control does not apply" in refused.text
    assert 'href="#reason-AC-2"' in refused.text and 'aria-invalid="true"' in refused.text
    admin = world["admin"].principal
    assert {c["label"]: c["status"] for c in container.compliance.control_statuses(admin, pid)}["AC-2"] == "missing"
    done = manager.post_form(url, f"/projects/{pid}/controls/AC-2/applicability",
                             {"applicable": "no", "reason": "Managed upstream", "back": url})
    assert done.status_code == 303 and done.headers["location"].startswith(url)
    statuses = {c["label"]: c for c in container.compliance.control_statuses(admin, pid)}
    assert (statuses["AC-2"]["status"], statuses["AC-2"]["reason"]) == ("not_applicable", "Managed upstream")
    # `back` must stay on this project's controls page.
    undone = manager.post_form(url, f"/projects/{pid}/controls/AC-2/applicability",
                               {"applicable": "yes", "back": "https://evil.example/"})
    assert undone.headers["location"] == f"/projects/{pid}/controls?notice=applicable"
    assert {c["label"]: c["status"] for c in container.compliance.control_statuses(admin, pid)}["AC-2"] == "missing"


# -- evidence and files --------------------------------------------------------------------------
@BOTH_BACKENDS
def test_evidence_is_created_with_files_controls_and_dates(browser, world, container, catalog_project):
    pid = catalog_project
    customer = browser("customer", world)
    response = upload(customer, f"/projects/{pid}/evidence/new", f"/projects/{pid}/evidence",
                      {"title": "Access review", "description": "Signed", "controls": "AC-2",
                       "effectiveDate": "2026-01-01", "expiresAt": "2026-12-31"},
                      [("review.pdf", demo_pdf("Review", ["ok"]), "application/pdf"),
                       ("shot.png", demo_png(2, (1, 2, 3)), "image/png")])
    assert response.status_code == 303, response.text
    eid = uuid.UUID(response.headers["location"].split("/")[2].split("?")[0])
    principal = world["customer"].principal
    evidence = container.evidence.get(principal, eid)
    assert (evidence["controlId"], evidence["effectiveDate"], evidence["expiresAt"]) == ("AC-2", "2026-01-01", "2026-12-31")
    files, _ = container.documents.list_for_evidence(principal, eid, cursor=None, limit=10)
    assert sorted(f["fileName"] for f in files) == ["review.pdf", "shot.png"]
    # More controls: the first stays primary, the others are links.
    linked = customer.post_form(f"/evidence/{eid}/controls", f"/evidence/{eid}/controls",
                                {"controls": "AC-2", "controlIds": "ac-2.1, AU-6"})
    assert linked.status_code == 303
    assert container.compliance.linked_controls(principal, eid)["controlRefs"] == ["AC-2.1", "AU-6"]


@SQLITE_ONLY
def test_a_refused_file_saves_nothing_at_all(browser, world, container, catalog_project):
    pid = catalog_project
    customer = browser("customer", world)
    before = stored_objects(container)
    good = ("review.pdf", demo_pdf("Review", ["ok"]), "application/pdf")
    cases = [
        (("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
          "image/svg+xml"), 415, "SVG images cannot be uploaded"),
        (("tool.exe", b"MZ\x90\x00\x03" + bytes(200), "application/octet-stream"), 415, "cannot be uploaded"),
        (("fake.pdf", b"plain words, no PDF\n", "application/pdf"), 415,
         "the file is a text file but its name ends in .pdf"),
        (("empty.txt", b"", "text/plain"), 400, "the file is empty"),
        (("big.txt", b"x" * (container.settings.max_upload_bytes + 1), "text/plain"), 413,
         "larger than the upload limit"),
    ]
    for bad, status, message in cases:
        response = upload(customer, f"/projects/{pid}/evidence/new", f"/projects/{pid}/evidence",
                          {"title": "Half", "controls": "AC-2"}, [good, bad])
        assert response.status_code == status, (bad[0], response.text[:500])
        assert message in response.text and f"{bad[0]}:" in response.text
        assert 'value="Half"' in response.text  # the fields are kept
    items, _ = container.evidence.list_for_project(world["admin"].principal, pid, cursor=None, limit=10,
                                                   sort="created_at", desc=True)
    assert items == []
    assert stored_objects(container) == before  # nothing committed, no temporary file left


@SQLITE_ONLY
def test_files_need_the_csrf_token_before_their_first_byte(browser, world, container, catalog_project):
    pid = catalog_project
    customer = browser("customer", world)
    before = stored_objects(container)
    response = upload(customer, f"/projects/{pid}/evidence/new", f"/projects/{pid}/evidence",
                      {"title": "Forged"}, [("a.txt", b"hello\n", "text/plain")], csrf=False)
    assert response.status_code == 403 and "did not come from this site" in response.text
    # A token sent after the file is too late: the file is refused before it is stored.
    token = csrf_of(customer.get(f"/projects/{pid}/evidence/new").text)
    late = customer.client.post(
        f"/projects/{pid}/evidence",
        content=(b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.txt\"\r\n\r\nhello\r\n"
                 b"--b\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n" + token.encode() +
                 b"\r\n--b\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nLate\r\n--b--\r\n"),
        headers={"content-type": "multipart/form-data; boundary=b"})
    assert late.status_code == 403
    assert stored_objects(container) == before


@SQLITE_ONLY
def test_revisions_and_new_files_follow_the_workflow(browser, world, container, catalog_project):
    pid = catalog_project
    principal = world["customer"].principal
    eid = uuid.UUID(container.evidence.create(principal, pid, EvidenceCreate(title="Log export"))["id"])
    customer = browser("customer", world)
    url = f"/evidence/{eid}"
    assert upload(customer, url, f"{url}/files", {}, [("log.txt", b"one\n", "text/plain")]).status_code == 303
    again = upload(customer, url, f"{url}/files", {"revisionOf": "log.txt"},
                   [("log-fixed.txt", b"two\n", "text/plain")])
    assert again.status_code == 303
    wrong_kind = upload(customer, url, f"{url}/files", {"revisionOf": "log.txt"},
                        [("shot.png", demo_png(1, (0, 0, 0)), "image/png")])
    assert wrong_kind.status_code == 400 and "cannot be a revision of log.txt" in wrong_kind.text
    files, _ = container.documents.list_for_evidence(principal, eid, cursor=None, limit=10)
    assert sorted((f["fileName"], f["revision"]) for f in files) == [("log.txt", 1), ("log.txt", 2)]
    container.evidence.submit(principal, eid)
    page = customer.get(url).text
    assert "Upload files" not in page and "Upload a new revision" not in page
    refused = upload(customer, f"/projects/{pid}", f"{url}/files", {}, [("late.txt", b"late\n", "text/plain")])
    assert refused.status_code == 409
    viewer = browser("viewer", world)
    assert "Upload files" not in viewer.get(url).text
    assert upload(viewer, url, f"{url}/files", {}, [("v.txt", b"v\n", "text/plain")]).status_code == 403


@SQLITE_ONLY
def test_editing_evidence_asks_the_workflow(browser, world, container, catalog_project):
    pid = catalog_project
    principal = world["customer"].principal
    eid = uuid.UUID(container.evidence.create(principal, pid, EvidenceCreate(title="Draft"))["id"])
    customer = browser("customer", world)
    url = f"/evidence/{eid}"
    bad = customer.post_form(f"{url}/edit", f"{url}/edit", {"title": "Draft", "effectiveDate": "2026-05-01",
                                                            "expiresAt": "2026-04-01"})
    assert bad.status_code == 400 and "on or after the effective date" in bad.text
    saved = customer.post_form(f"{url}/edit", f"{url}/edit", {"title": "Final", "effectiveDate": "2026-05-01",
                                                              "expiresAt": "2027-05-01"})
    assert saved.status_code == 303
    assert container.evidence.get(principal, eid)["title"] == "Final"
    container.evidence.submit(principal, eid)
    assert customer.get(f"{url}/edit").status_code == 409
    assert "Edit details" not in customer.get(url).text


# -- previews -------------------------------------------------------------------------------------
def _file(container: Any, principal: Any, eid: uuid.UUID, name: str, data: bytes, declared: str) -> str:
    writer = container.documents.new_writer()
    writer.write(data)
    recorded = container.documents.record(principal, eid, container.documents.finish(writer), file_name=name,
                                          declared_type=declared, effective_date=None)
    return str(recorded["file"]["id"])


@SQLITE_ONLY
def test_previews_are_sandboxed_and_never_active_content(browser, world, container, catalog_project):
    pid = catalog_project
    principal = world["customer"].principal
    eid = uuid.UUID(container.evidence.create(principal, pid, EvidenceCreate(title="Files"))["id"])
    ids = {
        "pdf": _file(container, principal, eid, "a.pdf", demo_pdf("A", ["b"]), "application/pdf"),
        "png": _file(container, principal, eid, "a.png", demo_png(1, (0, 0, 0)), "image/png"),
        "html": _file(container, principal, eid, "page.html",
                      b"<html><body><script>alert(document.cookie)</script></body></html>", "text/html"),
        "text": _file(container, principal, eid, "notes.txt", "caf\u00e9 au lait\n".encode("cp1252"), "text/plain"),
    }
    pending = browser("auditor", world).get(f"/files/{ids['pdf']}/preview")
    assert pending.status_code == 404  # not processed yet: its type is not known
    container.dispatcher.drain(timeout=60)
    auditor = browser("auditor", world)
    expected = {"pdf": "application/pdf", "png": "image/png", "html": "text/plain; charset=utf-8",
                "text": "text/plain; charset=utf-8"}
    for kind, fid in ids.items():
        response = auditor.get(f"/files/{fid}/preview")
        assert response.status_code == 200, kind
        assert response.headers["content-type"] == expected[kind]
        assert response.headers["content-security-policy"].startswith("sandbox;")
        assert "frame-ancestors 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "SAMEORIGIN"
        assert response.headers["content-disposition"].startswith("inline;")
    assert "<script>alert(document.cookie)</script>" in auditor.get(f"/files/{ids['html']}/preview").text
    assert auditor.get(f"/files/{ids['text']}/preview").text == "caf\u00e9 au lait\n"
    page = auditor.get(f"/evidence/{eid}").text
    assert f'<iframe class="preview preview-text" sandbox="" src="/files/{ids["html"]}/preview"' in page
    assert f'<img src="/files/{ids["png"]}/preview"' in page
    assert "frame-src 'self'" in auditor.get(f"/evidence/{eid}").headers["content-security-policy"]
    # Other organizations' files do not exist; neither do previews of unknown ids.
    outsider = Browser(auditor.client.app)
    assert outsider.login(world.outsider.email).status_code == 303
    assert outsider.get(f"/files/{ids['pdf']}/preview").status_code == 404
    assert auditor.get(f"/files/{uuid.uuid4()}/preview").status_code == 404
    outsider.client.close()


def test_previews_cover_exactly_the_detected_kinds_that_are_safe_to_show():
    assert set(PREVIEW) <= set(MIME.values())
    assert set(MIME.values()) <= set(KIND_LABELS)
    assert {PREVIEW[m] for m in PREVIEW} == {"pdf", "image", "text"}
    assert PREVIEW["text/html"] == "text"  # shown as its source, never rendered


# -- the review queue -----------------------------------------------------------------------------
@BOTH_BACKENDS
def test_the_review_queue_lists_what_waits_for_me_newest_or_oldest_first(browser, world, container,
                                                                         catalog_project):
    pid = catalog_project
    customer, manager = world["customer"].principal, world["manager"].principal
    titles = []
    for i in range(23):
        item = container.evidence.create(customer, pid, EvidenceCreate(title=f"Item {i:02d}"))
        container.evidence.submit(customer, uuid.UUID(item["id"]))
        titles.append(f"Item {i:02d}")
    own = container.evidence.create(manager, pid, EvidenceCreate(title="Manager's own"))
    container.evidence.submit(manager, uuid.UUID(own["id"]))
    decided = container.evidence.create(customer, pid, EvidenceCreate(title="Decided"))
    container.evidence.submit(customer, uuid.UUID(decided["id"]))
    container.evidence.review(world["auditor"].principal, uuid.UUID(decided["id"]),
                              ReviewCreate(decision=Decision.APPROVED))

    b = browser("manager", world)
    first = b.get("/reviews").text
    assert "23 waiting" in first and "Manager&#39;s own" not in first and "Decided" not in first
    shown = re.findall(r'class="strong" href="/evidence/[^"]+">([^<]+)<', first)
    assert shown == list(reversed(titles))[:20]
    next_url = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = re.findall(r'class="strong" href="/evidence/[^"]+">([^<]+)<', b.get(next_url).text)
    assert second == list(reversed(titles))[20:]
    oldest = re.findall(r'class="strong" href="/evidence/[^"]+">([^<]+)<', b.get("/reviews?order=oldest").text)
    assert oldest == titles[:20]
    # The auditor sees the manager's item too; the admin sees everything of the organization.
    _, _, for_auditor = container.evidence.review_queue(world["auditor"].principal, oldest_first=True,
                                                        cursor=None, limit=1)
    _, _, for_admin = container.evidence.review_queue(world["admin"].principal, oldest_first=True,
                                                      cursor=None, limit=1)
    assert (for_auditor, for_admin) == (24, 24)
    assert "Awaiting your review" in b.get("/dashboard").text
    assert b.get("/reviews?cursor=garbage").status_code == 400


@BOTH_BACKENDS
def test_migration_0007_adds_the_review_queue_index(database_url):
    engine = make_engine(database_url)
    try:
        indexes = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("evidence")}
    finally:
        engine.dispose()
    assert indexes["ix_evidence_org_status_updated"] == ["organization_id", "status", "updated_at", "id"]


@SQLITE_ONLY
def test_reject_needs_a_comment_beside_the_field(browser, world, container, catalog_project):
    customer = world["customer"].principal
    item = container.evidence.create(customer, catalog_project, EvidenceCreate(title="To decide"))
    container.evidence.submit(customer, uuid.UUID(item["id"]))
    auditor = browser("auditor", world)
    url = f"/evidence/{item['id']}"
    response = auditor.post_form(url, f"{url}/review", {"decision": "rejected", "comment": ""})
    assert response.status_code == 400
    assert 'href="#comment"' in response.text and 'id="comment-error"' in response.text
    assert 'aria-describedby="comment-hint comment-error"' in response.text
    assert container.evidence.get(customer, uuid.UUID(item["id"]))["status"] == "in_review"


@SQLITE_ONLY
def test_the_new_pages_carry_no_inline_script_style_or_handlers(browser, world, container, catalog_project):
    pid = catalog_project
    principal = world["customer"].principal
    eid = uuid.UUID(container.evidence.create(principal, pid, EvidenceCreate(title="Files"))["id"])
    container.evidence.create(principal, pid, EvidenceCreate(title="<script>alert(1)</script>"))
    _file(container, principal, eid, "<b>x</b>.txt", b"hello\n", "text/plain")
    container.dispatcher.drain(timeout=60)
    admin = browser("admin", world)
    urls = ["/dashboard", "/projects/new", f"/projects/{pid}", f"/projects/{pid}/controls",
            f"/projects/{pid}/members", f"/projects/{pid}/settings", f"/projects/{pid}/archive",
            f"/projects/{pid}/evidence/new", f"/projects/{pid}/controls/pick?q=ac", f"/evidence/{eid}",
            f"/evidence/{eid}/edit", f"/evidence/{eid}/controls", "/reviews",
            f"/projects/{pid}/members/{world['viewer'].user_id}/remove"]
    for url in urls:
        page = admin.get(url)
        assert page.status_code == 200, url
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, url
        assert re.search(r"<script(?![^>]*\ssrc=)", page.text) is None, url
        assert re.search(r"<style|\sstyle\s*=", page.text) is None, url
        assert re.search(r"<[^>]*\son[a-z]+\s*=", page.text) is None, url
        assert "<script>alert(1)" not in page.text and "<b>x</b>" not in page.text, url


@SQLITE_ONLY
def test_who_has_a_review_queue(browser, world, container, catalog_project):
    # A manager in no project yet: an empty queue, not a refusal (the menu offers it).
    admin = world["admin"].principal
    container.projects.remove_member(admin, catalog_project, world["manager"].user_id)
    container.projects.remove_member(admin, world.project_a, world["manager"].user_id)
    page = browser("manager", world).get("/reviews")
    assert page.status_code == 200 and "Nothing is waiting for you" in page.text
    # A customer who audits one project has a queue; a viewer has none.
    container.projects.add_member(admin, catalog_project, MemberAdd(userId=world["customer"].user_id,
                                                                    role=ProjectRole.AUDITOR))
    assert browser("customer", world).get("/reviews").status_code == 200
    assert browser("viewer", world).get("/reviews").status_code == 403
