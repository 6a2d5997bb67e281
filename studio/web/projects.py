"""Project pages: create (with a framework picker), the evidence list, settings and
archiving, members and their project roles, and controls marked not applicable.

Every action goes through the services the API calls (container.projects, .frameworks,
.compliance, .users); the pages only decide which controls to show, from the same
permission table the services enforce, and a hand-made request for a hidden action gets
the service's 403 as a page.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from studio.domains.projects.schemas import MemberAdd, ProjectCreate, ProjectUpdate
from studio.errors import AppError
from studio.gateway.envelope import request_id_of
from studio.permissions import ProjectRole, allowed
from studio.principal import Principal
from studio.web import forms
from studio.web.routes import (
    PAGE_HEADERS,
    PAGE_SIZE,
    STATUS_LABELS,
    PageRoute,
    _c,
    _check_form_csrf,
    _field,
    _page_url,
    _redirect,
    _render,
    _require,
    _uuid,
    framework_labels,
    templates,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

CONTROLS_PER_PAGE = 25
CONTROL_STATUSES = {
    "covered": "Covered", "partial": "Covered elsewhere", "expired": "Expired",
    "missing": "Missing", "not_applicable": "Not applicable",
}
ACTIONS = {
    "projects.create": "create projects",
    "project.update": "change this project's settings",
    "project.members.read": "see this project's members",
    "project.members.manage": "manage this project's members",
    "project.controls.manage": "mark this project's controls not applicable",
    "evidence.create": "add evidence to this project",
}


def refuse(action: str) -> AppError:
    """The 403 a page shows when its own check (the one that hid the control) says no."""
    return AppError("forbidden", f"your role does not allow you to {ACTIONS.get(action, action)}")


def require_role(project: dict[str, Any], action: str) -> str:
    role = project["myRole"]
    if not role or not allowed(role, action):
        raise refuse(action)
    return str(role)


def load_project(request: Request, principal: Principal, project_id: uuid.UUID) -> dict[str, Any]:
    """The project (404 when invisible) with its framework's name and the tabs the caller sees."""
    c = _c(request)
    project = c.projects.get(principal, project_id)
    framework_labels(c, principal, [project])
    role = project["myRole"] or ""
    project["may"] = {action: allowed(role, action) for action in (
        "project.update", "project.members.read", "project.members.manage",
        "project.controls.manage", "evidence.create", "evidence.review")}
    project["archived"] = project["status"] == "archived"
    return project


def _version_id(project: dict[str, Any]) -> uuid.UUID | None:
    value = project.get("frameworkVersionId")
    return uuid.UUID(str(value)) if value else None


# -- create --------------------------------------------------------------------------------
def _matches(query: str, framework: dict[str, Any]) -> bool:
    words = query.lower().split()
    text = f"{framework['name']} {framework['key']} {framework['latestVersion']}".lower()
    return all(w in text for w in words)


def _new_project_page(request: Request, principal: Principal, *, q: str = "",
                      form: dict[str, str] | None = None, error: AppError | None = None,
                      code: int = 200) -> Response:
    catalog = _c(request).frameworks.list(principal)
    chosen = (form or {}).get("framework", "")
    shown = [f for f in catalog if _matches(q, f) or f["id"] == chosen]
    return _render(request, "project_new.html", code, nav="dashboard", catalog=catalog,
                   frameworks=shown, q=q, form=form or {}, error=error)


@router.get("/projects/new")
def new_project_page(request: Request, q: str = "") -> Response:
    principal = _require(request)
    if not allowed(principal.role, "projects.create"):
        raise refuse("projects.create")
    return _new_project_page(request, principal, q=q[:120])


@router.post("/projects")
async def create_project(request: Request) -> Response:
    form = await request.form()

    def run() -> Response:
        principal = _require(request)
        _check_form_csrf(request, form)
        c = _c(request)
        values = {k: _field(form, k).strip() for k in ("name", "description", "framework")}
        problems = []
        if not values["name"]:
            problems.append(forms.problem("name", "Enter a name for the project"))
        catalog = {f["id"]: f for f in c.frameworks.list(principal)}
        framework = catalog.get(values["framework"])
        if framework is None:
            # The picker offers the catalog only; anything else (a typed name, a stale id)
            # is refused here rather than becoming a project scored against nothing.
            problems.append(forms.problem("framework", "Choose a framework from the catalog"))
        try:
            if problems:
                raise forms.invalid(problems)
            assert framework is not None
            try:
                body = ProjectCreate.model_validate({
                    "name": values["name"], "description": values["description"],
                    "framework": framework["key"]})
            except ValidationError as exc:
                raise forms.invalid(forms.from_validation(exc)) from exc
            created = c.projects.create(principal, body, request_id=request_id_of(request.scope))
        except AppError as err:
            if err.status in (401, 403):
                raise
            if err.code != "validation_error":
                err = forms.invalid(forms.detail_problems(err, "name"), err.status)
            return _new_project_page(request, principal, form=values, error=err, code=err.status)
        # Next: who works on it, for whoever may say so.
        members = allowed(created["myRole"] or "", "project.members.manage")
        return _redirect(f"/projects/{created['id']}{'/members' if members else ''}?notice=project_created")

    return await run_in_threadpool(run)


# -- the evidence list ------------------------------------------------------------------------
@router.get("/projects/{project_id}")
def project_page(request: Request, project_id: str, status: str | None = None,
                 cursor: str | None = None) -> Response:
    principal = _require(request)
    pid = _uuid(project_id, "project")
    c = _c(request)
    if status and status not in STATUS_LABELS:
        status = None
    project = load_project(request, principal, pid)
    items, next_cursor = c.evidence.list_for_project(
        principal, pid, cursor=cursor, limit=PAGE_SIZE, sort="created_at", desc=True, status=status)
    counts = c.evidence.status_counts(principal, [pid]).get(pid, {})
    counts = {s: counts.get(s, 0) for s in STATUS_LABELS}
    base = f"/projects/{pid}"
    filtered = base + (f"?{urlencode({'status': status})}" if status else "")
    return _render(
        request, "project.html", nav="dashboard", tab="evidence", project=project, items=items,
        counts=counts, total=sum(counts.values()), status=status,
        may_create=project["may"]["evidence.create"] and not project["archived"],
        next_url=_page_url(base, {"status": status}, next_cursor),
        first_url=filtered if cursor else None,
    )


# -- settings and archiving ----------------------------------------------------------------------
def _settings_page(request: Request, principal: Principal, pid: uuid.UUID, *,
                   form: dict[str, str] | None = None, error: AppError | None = None,
                   code: int = 200) -> Response:
    project = load_project(request, principal, pid)
    require_role(project, "project.update")
    values = form or {"name": project["name"], "description": project["description"],
                      "status": project["status"], "version": str(project["version"])}
    return _render(request, "project_settings.html", code, nav="dashboard", tab="settings",
                   project=project, form=values, error=error)


@router.get("/projects/{project_id}/settings")
def settings_page(request: Request, project_id: str) -> Response:
    principal = _require(request)
    return _settings_page(request, principal, _uuid(project_id, "project"))


@router.post("/projects/{project_id}/settings")
async def save_settings(request: Request, project_id: str) -> Response:
    form = await request.form()

    def run() -> Response:
        principal = _require(request)
        pid = _uuid(project_id, "project")
        _check_form_csrf(request, form)
        values = {k: _field(form, k).strip() for k in ("name", "description", "status", "version")}
        if values["status"] not in ("active", "inactive"):
            values["status"] = "active"  # archiving has its own page, with a confirmation
        try:
            if not values["name"]:
                raise forms.invalid([forms.problem("name", "Enter a name for the project")])
            try:
                body = ProjectUpdate.model_validate({k: values[k] for k in ("name", "description", "status")})
            except ValidationError as exc:
                raise forms.invalid(forms.from_validation(exc)) from exc
            version = values["version"]
            _c(request).projects.update(principal, pid, body,
                                        expected_version=int(version) if version.isdigit() else None,
                                        request_id=request_id_of(request.scope))
        except AppError as err:
            if err.status in (401, 403, 404):
                raise
            if err.code == "version_conflict":
                err = AppError("version_conflict", "someone changed this project while you were "
                                                   "editing; the page now shows their version")
                return _settings_page(request, principal, pid, error=err, code=409)
            if err.code != "validation_error":
                err = forms.invalid(forms.detail_problems(err, "name"), err.status)
            return _settings_page(request, principal, pid, form=values, error=err, code=err.status)
        return _redirect(f"/projects/{pid}/settings?notice=project_saved")

    return await run_in_threadpool(run)


@router.get("/projects/{project_id}/archive")
def archive_page(request: Request, project_id: str) -> Response:
    principal = _require(request)
    project = load_project(request, principal, _uuid(project_id, "project"))
    require_role(project, "project.update")
    return _render(request, "project_archive.html", nav="dashboard", tab="settings", project=project)


async def _set_status(request: Request, project_id: str, status: str, notice: str) -> Response:
    form = await request.form()

    def run() -> Response:
        principal = _require(request)
        pid = _uuid(project_id, "project")
        _check_form_csrf(request, form)
        _c(request).projects.update(principal, pid, ProjectUpdate.model_validate({"status": status}),
                                    expected_version=None, request_id=request_id_of(request.scope))
        return _redirect(f"/projects/{pid}?notice={notice}")

    return await run_in_threadpool(run)


@router.post("/projects/{project_id}/archive")
async def archive_project(request: Request, project_id: str) -> Response:
    return await _set_status(request, project_id, "archived", "project_archived")


@router.post("/projects/{project_id}/reactivate")
async def reactivate_project(request: Request, project_id: str) -> Response:
    return await _set_status(request, project_id, "active", "project_reactivated")


# -- members ---------------------------------------------------------------------------------------
PROJECT_ROLES = [r.value for r in ProjectRole]


def _members_page(request: Request, principal: Principal, pid: uuid.UUID, *, cursor: str | None = None,
                  form: dict[str, str] | None = None, error: AppError | None = None,
                  code: int = 200) -> Response:
    c = _c(request)
    project = load_project(request, principal, pid)
    require_role(project, "project.members.read")
    members, next_cursor = c.projects.members(principal, pid, cursor=cursor, limit=50)
    candidates: list[dict[str, Any]] = []
    may_manage = project["may"]["project.members.manage"]
    if may_manage and allowed(principal.role, "users.read"):
        users, _ = c.users.list(principal, cursor=None, limit=200, sort="email", desc=False)
        present = {m["userId"] for m in members}
        candidates = [u for u in users if u["isActive"] and u["id"] not in present]
    return _render(request, "members.html", code, nav="dashboard", tab="members", project=project,
                   members=members, candidates=candidates, roles=PROJECT_ROLES, may_manage=may_manage,
                   next_url=_page_url(f"/projects/{pid}/members", {}, next_cursor),
                   first_url=f"/projects/{pid}/members" if cursor else None,
                   form=form or {}, error=error)


@router.get("/projects/{project_id}/members")
def members_page(request: Request, project_id: str, cursor: str | None = None) -> Response:
    principal = _require(request)
    return _members_page(request, principal, _uuid(project_id, "project"), cursor=cursor)


@router.post("/projects/{project_id}/members")
async def save_member(request: Request, project_id: str) -> Response:
    form = await request.form()

    def run() -> Response:
        principal = _require(request)
        pid = _uuid(project_id, "project")
        _check_form_csrf(request, form)
        values = {k: _field(form, k).strip() for k in ("userId", "role")}
        try:
            try:
                body = MemberAdd.model_validate(values)
            except ValidationError as exc:
                raise forms.invalid(forms.from_validation(exc, {
                    "userId": "Choose a person", "role": "Choose their role in the project"})) from exc
            _c(request).projects.add_member(principal, pid, body, request_id=request_id_of(request.scope))
        except AppError as err:
            if err.status in (401, 403) or (err.status == 404 and not err.details):
                raise
            if err.code != "validation_error":
                err = forms.invalid(forms.detail_problems(err, "userId"), err.status)
            return _members_page(request, principal, pid, form=values, error=err, code=err.status)
        return _redirect(f"/projects/{pid}/members?notice=member_saved")

    return await run_in_threadpool(run)


def _member(request: Request, principal: Principal, pid: uuid.UUID, uid: uuid.UUID) -> dict[str, Any]:
    cursor = None
    while True:  # members are paged by user id; the one asked for is found in order
        members, cursor = _c(request).projects.members(principal, pid, cursor=cursor, limit=200)
        for member in members:
            if member["userId"] == str(uid):
                return member
        if cursor is None:
            raise AppError("not_found", "member not found")


@router.get("/projects/{project_id}/members/{user_id}/remove")
def remove_member_page(request: Request, project_id: str, user_id: str) -> Response:
    principal = _require(request)
    pid, uid = _uuid(project_id, "project"), _uuid(user_id, "member")
    project = load_project(request, principal, pid)
    require_role(project, "project.members.manage")
    member = _member(request, principal, pid, uid)
    return _render(request, "member_remove.html", nav="dashboard", tab="members", project=project,
                   member=member, is_me=uid == principal.user_id)


@router.post("/projects/{project_id}/members/{user_id}/remove")
async def remove_member(request: Request, project_id: str, user_id: str) -> Response:
    form = await request.form()

    def run() -> Response:
        principal = _require(request)
        pid, uid = _uuid(project_id, "project"), _uuid(user_id, "member")
        _check_form_csrf(request, form)
        _c(request).projects.remove_member(principal, pid, uid, request_id=request_id_of(request.scope))
        return _redirect(f"/projects/{pid}/members?notice=member_removed")

    return await run_in_threadpool(run)


# -- controls and applicability ----------------------------------------------------------------------
def _controls_page(request: Request, principal: Principal, pid: uuid.UUID, *, q: str = "",
                   status: str = "", page: int = 1, error: AppError | None = None,
                   failed_ref: str = "", reason: str = "", code: int = 200) -> Response:
    project = load_project(request, principal, pid)
    controls = _c(request).compliance.control_statuses(principal, pid)
    words = q.lower().split()
    found = [ctl for ctl in controls
             if all(w in f"{ctl['label']} {ctl['ref']} {ctl['title']}".lower() for w in words)]
    counts = dict.fromkeys(CONTROL_STATUSES, 0)
    for control in found:  # the tabs count what the search found
        counts[control["status"]] = counts.get(control["status"], 0) + 1
    shown = [ctl for ctl in found if not status or ctl["status"] == status]
    pages = max(1, -(-len(shown) // CONTROLS_PER_PAGE))
    page = min(max(page, 1), pages)
    here = {"q": q, "status": status}
    query = {k: v for k, v in here.items() if v}

    def page_url(n: int) -> str:
        return f"/projects/{pid}/controls?{urlencode({**query, 'page': str(n)})}"

    back = f"/projects/{pid}/controls" + (f"?{urlencode({**query, 'page': str(page)})}")
    return _render(
        request, "controls.html", code, nav="dashboard", tab="controls", project=project,
        controls=shown[(page - 1) * CONTROLS_PER_PAGE:page * CONTROLS_PER_PAGE], total=len(found),
        catalog_size=len(controls),
        matching=len(shown), counts=counts, labels=CONTROL_STATUSES, q=q, status=status, page=page,
        pages=pages, next_url=page_url(page + 1) if page < pages else None,
        prev_url=page_url(page - 1) if page > 1 else None, back=back,
        tab_urls={s: f"/projects/{pid}/controls" + (f"?{urlencode(t)}" if (t := {
            k: v for k, v in (("q", q), ("status", s)) if v}) else "") for s in ("", *CONTROL_STATUSES)},
        may_manage=project["may"]["project.controls.manage"] and not project["archived"],
        error=error, failed_ref=failed_ref, reason=reason,
    )


@router.get("/projects/{project_id}/controls")
def controls_page(request: Request, project_id: str, q: str = "", status: str = "",
                  page: int = 1) -> Response:
    principal = _require(request)
    if status not in CONTROL_STATUSES:
        status = ""
    return _controls_page(request, principal, _uuid(project_id, "project"), q=q[:120], status=status,
                          page=page)


@router.post("/projects/{project_id}/controls/{ref}/applicability")
async def set_applicability(request: Request, project_id: str, ref: str) -> Response:
    form = await request.form()

    def run() -> Response:
        principal = _require(request)
        pid = _uuid(project_id, "project")
        _check_form_csrf(request, form)
        applicable = _field(form, "applicable") == "yes"
        reason = _field(form, "reason").strip()
        back = _field(form, "back")
        if not back.startswith(f"/projects/{pid}/controls"):
            back = f"/projects/{pid}/controls"
        try:
            _c(request).compliance.set_applicability(principal, pid, ref[:120], applicable, reason,
                                                     request_id=request_id_of(request.scope))
        except AppError as err:
            if err.code != "validation_error":
                raise
            err = forms.invalid([forms.problem(f"reason-{ref}", "Say why the control does not apply "
                                                                "to this project")])
            return _controls_page(request, principal, pid, error=err, failed_ref=ref, reason=reason,
                                  code=400, **_back_state(back))
        notice = "applicable" if applicable else "not_applicable"
        return _redirect(f"{back}{'&' if '?' in back else '?'}notice={notice}")

    return await run_in_threadpool(run)


def _back_state(back: str) -> dict[str, Any]:
    """The list's filter and page, from the address the form came from."""
    query = parse_qs(urlsplit(back).query)
    state: dict[str, Any] = {"status": query.get("status", [""])[0], "q": query.get("q", [""])[0][:120]}
    if state["status"] not in CONTROL_STATUSES:
        state["status"] = ""
    page = query.get("page", ["1"])[0]
    state["page"] = int(page) if page.isdigit() else 1
    return state


@router.get("/projects/{project_id}/controls/pick")
def pick_controls(request: Request, project_id: str, q: str = "") -> Response:
    """Controls matching `q`, as checkboxes: the control picker's results (an HTML fragment)."""
    principal = _require(request)
    c = _c(request)
    project = c.projects.get(principal, _uuid(project_id, "project"))
    version_id = _version_id(project)
    found = c.frameworks.pick_controls(principal, version_id, q[:120]) if version_id else []
    html = templates.get_template("_control_options.html").render(controls=found, q=q)
    return HTMLResponse(html, headers=PAGE_HEADERS)
