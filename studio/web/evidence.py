"""Evidence pages: create with files, the evidence page with its files previewed inline,
edit, linked controls, new files and revisions, submit, and the review decision.

Files go through the document service exactly as on the API (storage writer, head check,
size limit, `record`); the workflow rules are asked, never restated: `workflow.may_*`
decides which buttons a page shows, and the services' `check_*` refuse the rest.

Previews never run anything from an uploaded file in the app's origin. A preview is
served from /files/{id}/preview only for a processed file whose type was decided from its
bytes (PDF, PNG, JPEG, or text), with `Content-Security-Policy: sandbox` (a unique opaque
origin: no script, no forms, no same-origin access, no top navigation) and
`X-Content-Type-Options: nosniff`. Text kinds, HTML included, are sent as text/plain, so
HTML is shown as its source and never rendered. Text previews are framed with
`sandbox=""`; images are plain <img> elements, which never run script. Chromium refuses to
run its PDF viewer in any sandboxed frame, so a PDF's frame has no sandbox attribute and
relies on the response's own sandbox policy for the same guarantee.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import structlog
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from studio.documents.names import content_disposition
from studio.documents.service import check_head
from studio.documents.storage import ObjectNotFound
from studio.domains.evidence import workflow
from studio.domains.evidence.schemas import EvidenceCreate, EvidenceUpdate, ReviewCreate
from studio.errors import AppError
from studio.gateway.authentication import CSRF_COOKIE
from studio.gateway.envelope import request_id_of
from studio.permissions import allowed
from studio.principal import Principal
from studio.web import forms, uploads
from studio.web import session as web_session
from studio.web.projects import load_project, require_role
from studio.web.routes import (
    PageRoute,
    _c,
    _check_form_csrf,
    _field,
    _redirect,
    _render,
    _require,
    _session_id,
    _uuid,
)

log = structlog.get_logger("studio.web")
router = APIRouter(route_class=PageRoute, include_in_schema=False)

MAX_FILES = 10
# Which processed files are shown in the page, and how.
PREVIEW = {
    "application/pdf": "pdf", "image/png": "image", "image/jpeg": "image",
    "text/plain": "text", "text/csv": "text", "text/markdown": "text", "application/json": "text",
    "text/html": "text",
}
KIND_LABELS = {
    "application/pdf": "PDF document", "image/png": "PNG image", "image/jpeg": "JPEG image",
    "text/plain": "Text file", "text/csv": "CSV file", "text/markdown": "Markdown file",
    "application/json": "JSON file", "text/html": "HTML page (shown as source)",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "Word document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "Excel workbook",
}
PREVIEW_TEXT_BYTES = 512 * 1024
PAGE_TEXT_CHARS = 20_000
PREVIEW_CSP = "sandbox; default-src 'none'; frame-ancestors 'self'"
FIELD_MESSAGES = {
    "title": "Enter a title of at most 255 characters",
    "effectiveDate": "Enter the effective date as a real date",
    "expiresAt": "Enter the expiry date as a real date",
    "controlId": "Enter a control id such as AC-2(1)",
    "description": "The description is too long",
}


def limits(request: Request) -> dict[str, Any]:
    """What the upload forms state before anything is sent."""
    max_bytes = _c(request).settings.max_upload_bytes
    return {"max_bytes": max_bytes, "max_human": uploads.human_size(max_bytes), "max_files": MAX_FILES,
            "accept": uploads.ACCEPT, "accepted": uploads.ACCEPTED_TEXT}


async def receive(request: Request) -> uploads.ReceivedForm:
    """The posted form: streamed when it carries files, else an ordinary form (no script)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        plain = await request.form()
        _check_form_csrf(request, plain)
        return uploads.ReceivedForm(fields={k: [v for v in plain.getlist(k) if isinstance(v, str)]
                                            for k in plain})
    c = _c(request)
    session_id = await run_in_threadpool(_session_id, request)
    cookie = request.cookies.get(CSRF_COOKIE)
    return await uploads.receive_form(
        content_type, request.stream(), new_writer=c.documents.new_writer, check_head=check_head,
        csrf_ok=lambda value: web_session.csrf_valid(c.settings.signing_key, session_id, cookie, value),
        limit=c.documents.max_upload_bytes, max_files=MAX_FILES)


def _subject(principal: Principal, role: str | None, evidence: dict[str, Any]) -> workflow.Subject:
    created_by = evidence.get("createdBy")
    return workflow.Subject(principal, role, uuid.UUID(created_by) if created_by else None,
                            evidence["status"])


def _chosen(received: uploads.ReceivedForm) -> list[str]:
    """Controls picked (checkboxes), typed (without script: comma separated) or the one id
    of a project without a catalog; in order, each once."""
    spellings = received.getlist("controls") + received.get("controlIds").split(",")
    spellings.append(received.get("controlId"))
    seen: dict[str, None] = {}
    for s in spellings:
        if s.strip():
            seen.setdefault(s.strip(), None)
    return list(seen)


def _resolve(request: Request, principal: Principal, project: dict[str, Any], spellings: list[str],
             problems: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The controls named, in the project's framework version; unknown ones become problems."""
    version = project.get("frameworkVersionId")
    if not version:
        if len(spellings) > 1:
            problems.append(forms.problem("controls", "This project has no catalog: give one control id"))
        return [{"label": s, "ref": s, "title": ""} for s in spellings[:1]]
    found = _c(request).frameworks.find_controls(principal, uuid.UUID(str(version)), spellings)
    for spelling, control in found.items():
        if control is None:
            problems.append(forms.problem("controls", f"{spelling} is not a control of "
                                                      f"{project['frameworkLabel']}"))
    return [c for c in found.values() if c is not None]


def _store(request: Request, principal: Principal, eid: uuid.UUID, received: uploads.ReceivedForm,
           request_id: str | None, file_name: str | None = None) -> None:
    """Commit each received file to storage and record it as a revision, one after the
    other (a refused record removes its own object); on a failure the rest are aborted."""
    docs = _c(request).documents
    try:
        for f in received.files:
            docs.record(principal, eid, docs.finish(f.writer), file_name=file_name or f.name,
                        declared_type=f.declared_type, effective_date=None, request_id=request_id)
    finally:
        received.abort()  # a no-op for every file committed above


# -- new evidence ------------------------------------------------------------------------------
def _new_page(request: Request, principal: Principal, pid: uuid.UUID, *,
              form: dict[str, str] | None = None, chosen: list[dict[str, Any]] | None = None,
              error: AppError | None = None, code: int = 200) -> Response:
    project = load_project(request, principal, pid)
    require_role(project, "evidence.create")
    if project["archived"]:
        raise AppError("conflict", "the project is archived; no new evidence")
    return _render(request, "evidence_new.html", code, nav="dashboard", tab="evidence", project=project,
                   form=form or {}, chosen=chosen or [], error=error, limits=limits(request))


@router.get("/projects/{project_id}/evidence/new")
def new_evidence_page(request: Request, project_id: str) -> Response:
    principal = _require(request)
    return _new_page(request, principal, _uuid(project_id, "project"))


@router.post("/projects/{project_id}/evidence")
async def create_evidence(request: Request, project_id: str) -> Response:
    pid = _uuid(project_id, "project")
    principal = await run_in_threadpool(_require, request)
    # Who may add evidence here is settled before a byte of a file is stored.
    project = await run_in_threadpool(load_project, request, principal, pid)
    require_role(project, "evidence.create")
    if project["archived"]:
        raise AppError("conflict", "the project is archived; no new evidence")
    received = await receive(request)

    def run() -> Response:
        c = _c(request)
        values = {k: received.get(k).strip() for k in ("title", "description", "effectiveDate", "expiresAt")}
        problems = list(received.problems)
        status = received.status if problems else 400
        if not values["title"]:
            problems.append(forms.problem("title", "Enter a title"))
        controls = _resolve(request, principal, project, _chosen(received), problems)
        try:
            body = EvidenceCreate.model_validate({
                "title": values["title"] or "untitled", "description": values["description"],
                "controlId": controls[0]["label"] if controls else None,
                "effectiveDate": values["effectiveDate"] or None, "expiresAt": values["expiresAt"] or None})
        except ValidationError as exc:
            for p in forms.from_validation(exc, FIELD_MESSAGES):
                if not p["field"]:  # the rule across fields: the dates' order
                    p = forms.problem("expiresAt", "The expiry date must be on or after the effective date")
                problems.append(p)
        if problems:
            received.abort()
            return _new_page(request, principal, pid, form=values, chosen=controls,
                             error=forms.invalid(problems, status), code=status)
        rid = request_id_of(request.scope)
        try:
            created = c.evidence.create(principal, pid, body, request_id=rid)
        except BaseException:
            received.abort()
            raise
        eid = uuid.UUID(created["id"])
        try:
            _store(request, principal, eid, received, rid)
            if len(controls) > 1:
                c.compliance.link_controls(principal, eid, [x["label"] for x in controls[1:]], request_id=rid)
        except BaseException:
            # Nothing half-saved: evidence whose files did not all record goes again.
            log.warning("evidence_create_rolled_back", evidence_id=str(eid))
            c.evidence.delete(principal, eid, request_id=rid)
            raise
        return _redirect(f"/evidence/{eid}?notice=created")

    return await run_in_threadpool(run)


# -- the evidence page ---------------------------------------------------------------------------------
def _file_groups(request: Request, principal: Principal, evidence_id: uuid.UUID) -> list[dict[str, Any]]:
    """Files by name, newest revision first, each with how it is previewed and its text."""
    c = _c(request)
    revisions, _ = c.documents.list_for_evidence(principal, evidence_id, cursor=None, limit=100)
    groups: dict[str, dict[str, Any]] = {}
    for f in revisions:
        group = groups.setdefault(f["fileName"], {"latest": f, "older": []})
        if group["latest"] is not f:
            group["older"].append(f)
    for group in groups.values():
        latest = group["latest"]
        kind = latest["detectedType"] or latest["declaredType"] or ""
        group["kind"] = KIND_LABELS.get(kind, kind or "File")
        group["preview"] = PREVIEW.get(latest["detectedType"] or "") if latest["status"] == "processed" else None
        group["text"] = None
        if latest["status"] == "processed":
            text = c.documents.text(principal, uuid.UUID(latest["id"]))
            group["text"] = {**text, "shown": text["text"][:PAGE_TEXT_CHARS],
                             "cut": len(text["text"]) > PAGE_TEXT_CHARS or text["truncated"]}
    return list(groups.values())


def _evidence_page(request: Request, principal: Principal, evidence_id: uuid.UUID, *,
                   error: AppError | None = None, comment: str = "", upload_error: AppError | None = None,
                   code: int = 200) -> Response:
    c = _c(request)
    evidence = c.evidence.get(principal, evidence_id)
    pid = uuid.UUID(evidence["projectId"])
    project = load_project(request, principal, pid)
    role = project["myRole"]
    reviews, _ = c.evidence.reviews(principal, evidence_id, cursor=None, limit=100)
    names = {str(principal.user_id): f"{principal.name} (you)"}
    if role and allowed(role, "project.members.read"):
        members, _ = c.projects.members(principal, pid, cursor=None, limit=200)
        for member in members:
            names.setdefault(member["userId"], member["name"])
    subject = _subject(principal, role, evidence)
    linked = c.compliance.linked_controls(principal, evidence_id)
    controls: list[dict[str, Any]] = []
    version = project.get("frameworkVersionId")
    if version and linked["controls"]:
        found = c.frameworks.find_controls(principal, uuid.UUID(str(version)), linked["controls"])
        controls = [ctl for ctl in found.values() if ctl]
    elif evidence["controlId"]:
        controls = [{"label": evidence["controlId"], "title": ""}]
    return _render(
        request, "evidence.html", code, nav="dashboard", evidence=evidence, project=project,
        reviews=list(reversed(reviews)), names=names, files=_file_groups(request, principal, evidence_id),
        controls=controls, may_submit=workflow.may_submit(subject), may_review=workflow.may_review(subject),
        may_edit=workflow.may_edit(subject), is_own=subject.own, role=role, error=error, comment=comment,
        upload_error=upload_error, limits=limits(request),
    )


@router.get("/evidence/{evidence_id}")
def evidence_page(request: Request, evidence_id: str) -> Response:
    principal = _require(request)
    return _evidence_page(request, principal, _uuid(evidence_id, "evidence"))


# -- edit ----------------------------------------------------------------------------------------------
def _editable(request: Request, principal: Principal, eid: uuid.UUID) -> tuple[dict[str, Any], dict[str, Any]]:
    """The evidence and its project, if the workflow lets the caller edit it (403/409 otherwise)."""
    evidence = _c(request).evidence.get(principal, eid)
    project = load_project(request, principal, uuid.UUID(evidence["projectId"]))
    workflow.check_edit(_subject(principal, project["myRole"], evidence))
    return evidence, project


def _edit_page(request: Request, principal: Principal, eid: uuid.UUID, *, form: dict[str, str] | None = None,
               error: AppError | None = None, code: int = 200) -> Response:
    evidence, project = _editable(request, principal, eid)
    values = form or {"title": evidence["title"], "description": evidence["description"],
                      "effectiveDate": evidence["effectiveDate"] or "", "expiresAt": evidence["expiresAt"] or "",
                      "version": str(evidence["version"])}
    return _render(request, "evidence_edit.html", code, nav="dashboard", evidence=evidence, project=project,
                   form=values, error=error)


@router.get("/evidence/{evidence_id}/edit")
def edit_page(request: Request, evidence_id: str) -> Response:
    principal = _require(request)
    return _edit_page(request, principal, _uuid(evidence_id, "evidence"))


@router.post("/evidence/{evidence_id}/edit")
async def save_evidence(request: Request, evidence_id: str) -> Response:
    form = await request.form()

    def run() -> Response:
        principal = _require(request)
        eid = _uuid(evidence_id, "evidence")
        _check_form_csrf(request, form)
        evidence, _ = _editable(request, principal, eid)
        values = {k: _field(form, k).strip() for k in ("title", "description", "effectiveDate", "expiresAt",
                                                       "version")}
        current = {"title": evidence["title"], "description": evidence["description"],
                   "effectiveDate": evidence["effectiveDate"], "expiresAt": evidence["expiresAt"]}
        wanted = {"title": values["title"], "description": values["description"],
                  "effectiveDate": values["effectiveDate"] or None, "expiresAt": values["expiresAt"] or None}
        changes = {k: v for k, v in wanted.items() if v != current[k]}
        try:
            problems = [] if values["title"] else [forms.problem("title", "Enter a title")]
            eff, exp = wanted["effectiveDate"], wanted["expiresAt"]
            if eff and exp and exp < eff:  # ISO dates compare as text
                problems.append(forms.problem("expiresAt", "The expiry date must be on or after the "
                                                           "effective date"))
            if problems:
                raise forms.invalid(problems)
            if not changes:
                return _redirect(f"/evidence/{eid}")
            try:
                body = EvidenceUpdate.model_validate(changes)
            except ValidationError as exc:
                raise forms.invalid(forms.from_validation(exc, FIELD_MESSAGES)) from exc
            version = values["version"]
            _c(request).evidence.update(principal, eid, body,
                                        expected_version=int(version) if version.isdigit() else None,
                                        request_id=request_id_of(request.scope))
        except AppError as err:
            if err.status in (401, 403, 404):
                raise
            if err.code == "version_conflict":
                err = AppError("version_conflict", "someone changed this evidence while you were editing; "
                                                   "the page now shows their version")
                return _edit_page(request, principal, eid, error=err, code=409)
            if err.code != "validation_error":
                err = forms.invalid(forms.detail_problems(err, "title"), err.status)
            return _edit_page(request, principal, eid, form=values, error=err, code=err.status)
        return _redirect(f"/evidence/{eid}?notice=evidence_saved")

    return await run_in_threadpool(run)


# -- linked controls ---------------------------------------------------------------------------------------
def _controls_page(request: Request, principal: Principal, eid: uuid.UUID, *,
                   chosen: list[dict[str, Any]] | None = None, error: AppError | None = None,
                   code: int = 200) -> Response:
    c = _c(request)
    evidence, project = _editable(request, principal, eid)
    if chosen is None:
        linked = c.compliance.linked_controls(principal, eid)
        spellings = ([evidence["controlId"]] if evidence["controlId"] else []) + linked["controlRefs"]
        chosen = _resolve(request, principal, project, spellings, []) if spellings else []
    return _render(request, "evidence_controls.html", code, nav="dashboard", evidence=evidence,
                   project=project, chosen=chosen, error=error)


@router.get("/evidence/{evidence_id}/controls")
def controls_page(request: Request, evidence_id: str) -> Response:
    principal = _require(request)
    return _controls_page(request, principal, _uuid(evidence_id, "evidence"))


@router.post("/evidence/{evidence_id}/controls")
async def save_controls(request: Request, evidence_id: str) -> Response:
    eid = _uuid(evidence_id, "evidence")
    principal = await run_in_threadpool(_require, request)
    received = await receive(request)

    def run() -> Response:
        c = _c(request)
        evidence, project = _editable(request, principal, eid)
        problems: list[dict[str, str]] = []
        controls = _resolve(request, principal, project, _chosen(received), problems)
        if problems:
            return _controls_page(request, principal, eid, chosen=controls, error=forms.invalid(problems),
                                  code=400)
        rid = request_id_of(request.scope)
        primary = controls[0]["label"] if controls else None
        if primary != evidence["controlId"]:
            c.evidence.update(principal, eid, EvidenceUpdate.model_validate({"controlId": primary}),
                              expected_version=evidence["version"], request_id=rid)
        if project.get("frameworkVersionId"):
            c.compliance.link_controls(principal, eid, [x["label"] for x in controls[1:]], request_id=rid)
        return _redirect(f"/evidence/{eid}?notice=controls_saved")

    return await run_in_threadpool(run)


# -- files --------------------------------------------------------------------------------------------------
@router.post("/evidence/{evidence_id}/files")
async def add_files(request: Request, evidence_id: str) -> Response:
    eid = _uuid(evidence_id, "evidence")
    principal = await run_in_threadpool(_require, request)
    c = _c(request)
    # The workflow says whether this evidence takes files before any byte is stored.
    await run_in_threadpool(c.documents.upload_target, principal, eid)
    received = await receive(request)

    def run() -> Response:
        problems = list(received.problems)
        status = received.status if problems else 400
        revision_of = received.get("revisionOf").strip()
        field = "revision" if revision_of else "files"
        if not received.files and not problems:
            problems.append(forms.problem(field, "Choose a file to upload"))
        if revision_of:
            for f in received.files:
                mismatch = uploads.name_problem(revision_of, f.writer.head)
                if mismatch:
                    problems.append(forms.problem(field, f"{f.name} cannot be a revision of "
                                                         f"{revision_of}: {mismatch}"))
            if len(received.files) > 1:
                problems.append(forms.problem(field, "A new revision is one file"))
        if problems:
            received.abort()
            return _evidence_page(request, principal, eid, upload_error=forms.invalid(problems, status),
                                  code=status)
        _store(request, principal, eid, received, request_id_of(request.scope), revision_of or None)
        return _redirect(f"/evidence/{eid}?notice=files_added#files")

    return await run_in_threadpool(run)


def _text_preview(chunks: Iterator[bytes]) -> str:
    data = bytearray()
    for chunk in chunks:
        data += chunk
        if len(data) >= PREVIEW_TEXT_BYTES:
            break
    cut = len(data) > PREVIEW_TEXT_BYTES
    raw = bytes(data[:PREVIEW_TEXT_BYTES]).removeprefix(b"\xef\xbb\xbf")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A character cut at the end of the preview is not an error; anything else is an
        # 8-bit file (the processor accepts Windows-1252 text too).
        text = raw[:exc.start].decode("utf-8") if exc.start >= len(raw) - 3 else raw.decode("cp1252", "replace")
    if cut:
        text += "\n\n[The preview ends here; download the file to read the rest.]\n"
    return text


@router.get("/files/{file_id}/preview")
def preview_file(request: Request, file_id: str) -> Response:
    """A processed file's content for the page's preview frame, sandboxed (module docstring)."""
    principal = _require(request)
    c = _c(request)
    row = c.documents.for_download(principal, _uuid(file_id, "file"))
    kind = PREVIEW.get(row["detected_type"] or "") if row["status"] == "processed" else None
    if kind is None:
        raise AppError("not_found", "this file has no preview; download it instead")
    headers = {
        "Content-Security-Policy": PREVIEW_CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "SAMEORIGIN",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Content-Disposition": content_disposition(row["file_name"]).replace("attachment", "inline", 1),
        "Cache-Control": "private, no-store",
    }
    try:
        chunks = c.storage.open(row["storage_key"])
    except ObjectNotFound as exc:
        raise AppError("not_found", "the file's content is missing from storage") from exc
    if kind == "text":
        return Response(_text_preview(chunks), media_type="text/plain; charset=utf-8", headers=headers)
    headers["Content-Length"] = str(row["size"])
    return StreamingResponse(chunks, media_type=row["detected_type"], headers=headers)


# -- the workflow ----------------------------------------------------------------------------------------------
@router.post("/evidence/{evidence_id}/submit")
async def submit_evidence(request: Request, evidence_id: str) -> Response:
    form = await request.form()

    def run() -> Response:
        principal = _require(request)
        eid = _uuid(evidence_id, "evidence")
        _check_form_csrf(request, form)
        try:
            _c(request).evidence.submit(principal, eid, request_id=request_id_of(request.scope))
        except AppError as err:
            if err.status in (404, 401):
                raise
            return _evidence_page(request, principal, eid, error=err, code=err.status)
        return _redirect(f"/evidence/{eid}?notice=submitted")

    return await run_in_threadpool(run)


@router.post("/evidence/{evidence_id}/review")
async def review_evidence(request: Request, evidence_id: str) -> Response:
    form = await request.form()

    def run() -> Response:
        principal = _require(request)
        eid = _uuid(evidence_id, "evidence")
        _check_form_csrf(request, form)
        comment = _field(form, "comment")
        try:
            try:
                body = ReviewCreate.model_validate({"decision": _field(form, "decision"), "comment": comment})
            except ValidationError as exc:
                raise forms.invalid([forms.problem("comment", "Enter a comment: a rejection needs a "
                                                   "comment that tells the uploader what to fix")]
                                    if _field(form, "decision") == "rejected"
                                    else forms.from_validation(exc)) from exc
            _c(request).evidence.review(principal, eid, body, request_id=request_id_of(request.scope))
        except AppError as err:
            if err.status in (404, 401):
                raise
            return _evidence_page(request, principal, eid, error=err, comment=comment, code=err.status)
        return _redirect(f"/evidence/{eid}?notice={body.decision.value}")

    return await run_in_threadpool(run)
