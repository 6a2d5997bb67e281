"""Server-rendered pages: the same services as the API, behind a cookie session.

Pages live outside /api/, so the envelope does not apply; every failure still renders a
page (a friendly message and the request id), never a stack trace or a bare 500.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jinja2
import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from markupsafe import Markup
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response

from studio import __version__
from studio.domains.auth.schemas import LoginRequest
from studio.domains.auth.security import csrf_token, device_token
from studio.domains.users.schemas import UserCreate, UserUpdate
from studio.errors import AppError, DatabaseUnavailable
from studio.gateway.authentication import CSRF_COOKIE, SESSION_COOKIE
from studio.gateway.envelope import request_id_of
from studio.gateway.rate_limit import DEVICE_COOKIE, LoginThrottle, set_device_cookie
from studio.permissions import Role, allowed
from studio.principal import AuthInfo, Principal
from studio.validation import clean_rich
from studio.web import session as web_session

if TYPE_CHECKING:
    from studio.bootstrap import Container

log = structlog.get_logger("studio.web")

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
STATIC_PREFIX = "/static/web"
PAGE_SIZE = 20

# Stricter than the API's policy: pages carry no inline script or style at all. Frames
# come only from this origin: file previews, each served sandboxed (studio/web/evidence.py).
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; frame-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {"content-security-policy": PAGE_CSP, "cache-control": "no-store"}

STATUS_LABELS = {
    "pending": "Pending", "in_review": "In review", "approved": "Approved", "rejected": "Rejected",
}
NOTICES = {
    "logged_out": "You have been logged out.",
    "expired": "Your session has ended. Please log in again.",
    "created": "Evidence created. Submit it for review when it is complete.",
    "submitted": "Submitted for review.",
    "approved": "Evidence approved.",
    "rejected": "Evidence rejected; the uploader sees your comment.",
    "user_created": "User created.",
    "role_changed": "Role changed. It takes effect on the user's next request.",
    "project_created": "Project created. Add its members next.",
    "project_saved": "Project details saved.",
    "project_archived": "Project archived. Its evidence stays readable; nothing new can be added.",
    "project_reactivated": "Project reactivated.",
    "member_saved": "Member saved. Their role applies on their next request.",
    "member_removed": "Member removed from the project.",
    "not_applicable": "Control marked not applicable; the score no longer counts it.",
    "applicable": "Control counts again.",
    "files_added": "Files uploaded. They are checked and their text is read in the background.",
    "controls_saved": "Linked controls saved.",
    "evidence_saved": "Evidence details saved.",
}
FIELD_LABELS = {
    "title": "Title", "description": "Description", "controlId": "Control",
    "effectiveDate": "Effective date", "expiresAt": "Expires", "comment": "Comment",
    "decision": "Decision", "email": "E-mail", "password": "Password", "name": "Name",
    "role": "Role",
}
ERROR_TITLES = {
    400: "Please check your input", 401: "Please log in", 403: "Not allowed",
    404: "Not found", 409: "That cannot be done right now", 413: "Too large",
    429: "Too many attempts", 503: "Temporarily unavailable",
}


def _static_version() -> str:
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(STATIC_DIR.iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def _format_time(value: str | None) -> str:
    if not value:
        return "—"
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _ago(value: str | None) -> str:
    """A relative time ("3 hours ago"); the absolute one goes in a title beside it."""
    if not value:
        return "—"
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    seconds = int((dt.datetime.now(dt.UTC) - moment).total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return "just now"


def _size(value: int | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}".replace(".0 ", " ")
        size /= 1024
    return f"{value} bytes"


def _field_errors(error: AppError | None) -> dict[str, str]:
    """Field name -> its first message, for the message beside each field."""
    found: dict[str, str] = {}
    details = error.details if error is not None else None
    if isinstance(details, list):
        for d in details:
            if isinstance(d, dict) and d.get("field"):
                found.setdefault(str(d["field"]), str(d.get("message", "")))
    return found


def _rich(value: str | None) -> Any:
    # Stored descriptions were sanitized on the way in; cleaning again on the way out means
    # a row written by any other path still cannot carry script into a page.
    return Markup(clean_rich(value or ""))  # noqa: S704


templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["when"] = _format_time
templates.filters["rich"] = _rich
templates.filters["ago"] = _ago
templates.filters["filesize"] = _size
templates.globals.update(field_errors=_field_errors, status_labels=STATUS_LABELS, static_prefix=STATIC_PREFIX,
                         version=__version__, allowed=allowed, static_version=_static_version())


# -- plumbing ------------------------------------------------------------------------
class LoginRequired(Exception):
    """The page needs a session and the request has none (or it ended)."""


def _c(request: Request) -> Container:
    c: Container = request.app.state.container  # Starlette's State holds untyped attributes
    return c


def _principal(request: Request) -> Principal | None:
    """The caller of a page: only a cookie session counts, with their current role."""
    auth: AuthInfo | None = request.scope.get("state", {}).get("auth")
    if auth is None or auth.kind != "session" or auth.session_id is None:
        return None
    principal = _c(request).auth.principal(auth)
    if principal is not None:
        request.state.principal = principal
    return principal


def _require(request: Request) -> Principal:
    principal = _principal(request)
    if principal is None:
        raise LoginRequired
    return principal


def _session_id(request: Request) -> uuid.UUID | None:
    auth = request.scope.get("state", {}).get("auth")
    return auth.session_id if auth is not None and auth.kind == "session" else None


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise AppError("not_found", f"{what} not found") from exc


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _validation(exc: ValidationError) -> AppError:
    details = []
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ())]
        field = loc[0] if loc else "form"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        details.append({"field": FIELD_LABELS.get(field, field if loc else ""), "message": message})
    return AppError("validation_error", "please correct the fields below", details=details)


def _safe_next(target: str | None) -> str:
    # Only local paths: "//host" and "/\\host" would leave the site (open redirect).
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/dashboard"


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"cache-control": "no-store"})


def _render(request: Request, template: str, code: int = 200, **context: Any) -> HTMLResponse:
    c = _c(request)
    principal: Principal | None = getattr(request.state, "principal", None)
    session_id = _session_id(request) if principal else None
    csrf, new_csrf = web_session.current_csrf(request, c.settings.signing_key, session_id)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    html = templates.get_template(template).render(
        request=request, me=principal, csrf=csrf, notice=notice,
        request_id=request_id_of(request.scope), **context,
    )
    response = HTMLResponse(html, status_code=code, headers=PAGE_HEADERS)
    if new_csrf:
        web_session.set_csrf_cookie(response, request, csrf)
    if principal is not None and session_id is not None:
        _renew(request, response, principal, session_id)
    return response


def _renew(request: Request, response: Response, principal: Principal,
           session_id: uuid.UUID) -> None:
    """Slide the idle expiry of an active session (at most every few minutes)."""
    c = _c(request)
    idle = dt.timedelta(seconds=c.settings.web_session_idle_seconds)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if not web_session.needs_renewal(c.tokens, cookie, idle):
        return
    deadline = c.auth.session_deadline(session_id)
    if deadline is None:
        return
    token = web_session.mint(
        c.tokens, web_session.WebSession(principal.user_id, principal.organization_id, session_id),
        idle, deadline)
    if token:
        web_session.set_session_cookie(response, request, token)


def _error_page(request: Request, err: AppError) -> HTMLResponse:
    title = ERROR_TITLES.get(err.status, "Something went wrong")
    return _render(request, "error.html", err.status, title=title, error=err)


class PageRoute(APIRoute):
    """Turns every failure of a page handler into a page, and a missing session into a
    redirect to the login page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            response: Response
            try:
                return await handler(request)
            except LoginRequired:
                ended = bool(request.cookies.get(SESSION_COOKIE))
                query = {"next": request.url.path} if request.method == "GET" else {}
                if ended:
                    query["notice"] = "expired"
                response = _redirect("/login" + (f"?{urlencode(query)}" if query else ""))
                if ended:
                    web_session.clear_cookies(response, request)
                return response
            except AppError as err:
                response = await run_in_threadpool(_error_page, request, err)
            except (RequestValidationError, StarletteHTTPException) as exc:
                status = getattr(exc, "status_code", 400)
                code = "not_found" if status == 404 else "validation_error"
                response = await run_in_threadpool(_error_page, request, AppError(code))
            except DatabaseUnavailable:
                unavailable = AppError("service_unavailable",
                                       "the database is unavailable; try again shortly")
                response = _plain_error(request, unavailable)
            except Exception as exc:
                log.exception("page_failed", path=request.url.path, exc_info=exc)
                response = _plain_error(request, AppError("internal_error"))
            return response

        return page_handler


def _plain_error(request: Request, err: AppError) -> HTMLResponse:
    """An error page that needs neither the database nor a session (those may be what failed)."""
    try:
        html = templates.get_template("error.html").render(
            request=request, me=None, csrf="", notice=None,
            title=ERROR_TITLES.get(err.status, "Something went wrong"), error=err,
            request_id=request_id_of(request.scope))
    except Exception:  # the template itself failed: still no stack trace to the user
        html = "<!doctype html><title>Error</title><p>Something went wrong.</p>"
    return HTMLResponse(html, status_code=err.status, headers=PAGE_HEADERS)


router = APIRouter(route_class=PageRoute, include_in_schema=False)


# -- entry, login, logout ------------------------------------------------------------
@router.get("/")
def index(request: Request) -> Response:
    return _redirect("/dashboard" if _principal(request) else "/login")


@router.get("/login")
def login_page(request: Request) -> Response:
    if _principal(request):
        return _redirect(_safe_next(request.query_params.get("next")))
    return _render(request, "login.html", next=_safe_next(request.query_params.get("next")),
                   email="", error=None)


@router.post("/login")
async def login_submit(request: Request) -> Response:
    c = _c(request)
    form = await request.form()
    email, password = _field(form, "email").strip(), _field(form, "password")
    target = _safe_next(_field(form, "next"))

    def again(err: AppError) -> Response:
        return _render(request, "login.html", err.status, next=target, email=email, error=err)

    if not web_session.csrf_valid(c.settings.signing_key, None,
                                  request.cookies.get(CSRF_COOKIE),
                                  _field(form, web_session.CSRF_FIELD)):
        return await run_in_threadpool(again, AppError(
            "csrf_failed", "the login form expired; please try again"))
    try:
        body = LoginRequest(email=email, password=password)
    except ValidationError:
        return await run_in_threadpool(again, AppError("invalid_credentials"))
    client = request.client.host if request.client else "unknown"
    account = str(body.email).lower()

    def check() -> dict[str, Any]:
        return c.auth.login(str(body.email), body.password,
                            request_id=request_id_of(request.scope), client_ip=client)

    # The same throttle and budgets as POST /api/v1/auth/login: the page is no way around them.
    throttle = LoginThrottle.from_settings(c.limiter, c.settings)
    try:
        pair = await throttle.login(check, client=client, email=account,
                                    device_cookie=request.cookies.get(DEVICE_COOKIE))
    except AppError as err:
        return await run_in_threadpool(again, err)
    claims = c.tokens.verify(pair["accessToken"])
    assert claims.session_id is not None
    deadline = dt.datetime.fromisoformat(pair["refreshExpiresAt"].replace("Z", "+00:00"))
    token = web_session.mint(
        c.tokens, web_session.WebSession(claims.user_id, claims.organization_id, claims.session_id),
        dt.timedelta(seconds=c.settings.web_session_idle_seconds), deadline)
    assert token is not None
    response = _redirect(target)
    web_session.set_session_cookie(response, request, token)
    web_session.set_csrf_cookie(response, request,
                                csrf_token(c.settings.signing_key, claims.session_id))
    set_device_cookie(response, device_token(c.settings.signing_key, account),
                      secure=request.url.scheme == "https")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    c = _c(request)
    form = await request.form()
    principal = await run_in_threadpool(_principal, request)
    if principal is not None:
        session_id = _session_id(request)
        web_session.check_csrf(request, c.settings.signing_key, session_id,
                               _field(form, web_session.CSRF_FIELD))
        await run_in_threadpool(c.auth.logout, principal, session_id, None,
                                request_id=request_id_of(request.scope))
    response = _redirect("/login?notice=logged_out")
    web_session.clear_cookies(response, request)
    return response


# -- dashboard -----------------------------------------------------------------------
def framework_labels(c: Container, principal: Principal, projects: list[dict[str, Any]]) -> None:
    """Give each project a `frameworkLabel`: the catalog's name and version, never its key."""
    ids = {p["frameworkVersionId"] for p in projects if p.get("frameworkVersionId")}
    versions = c.frameworks.versions(principal, [uuid.UUID(str(v)) for v in ids])
    for project in projects:
        version = versions.get(str(project.get("frameworkVersionId")))
        project["frameworkLabel"] = (f"{version['name']} · version {version['version']}" if version
                                     else f"{project['framework']} (not in the catalog)")


@router.get("/dashboard")
def dashboard(request: Request, cursor: str | None = None) -> Response:
    principal = _require(request)
    c = _c(request)
    projects, next_cursor = c.projects.list(principal, cursor=cursor, limit=50, sort="name",
                                            desc=False)
    framework_labels(c, principal, projects)
    counts = c.evidence.status_counts(principal, [uuid.UUID(p["id"]) for p in projects])
    totals = dict.fromkeys(STATUS_LABELS, 0)
    for project in projects:
        project_counts = counts.get(uuid.UUID(project["id"]), {})
        project["counts"] = {s: project_counts.get(s, 0) for s in STATUS_LABELS}
        project["total"] = sum(project["counts"].values())
        for s in STATUS_LABELS:
            totals[s] += project["counts"][s]
    # What waits for this caller's decision (never their own evidence), across all projects.
    awaiting_me = None
    if c.evidence.reviews_somewhere(principal):
        _, _, awaiting_me = c.evidence.review_queue(principal, oldest_first=False, cursor=None,
                                                    limit=1)
    return _render(request, "dashboard.html", nav="dashboard", projects=projects, totals=totals,
                   awaiting_me=awaiting_me, next_url=_page_url("/dashboard", {}, next_cursor),
                   first_url="/dashboard" if cursor else None,
                   may_create=allowed(principal.role, "projects.create"))


def _page_url(path: str, params: dict[str, str | None], cursor: str | None) -> str | None:
    if not cursor:
        return None
    query = {k: v for k, v in params.items() if v}
    query["cursor"] = cursor
    return f"{path}?{urlencode(query)}"


def _check_form_csrf(request: Request, form: FormData) -> None:
    web_session.check_csrf(request, _c(request).settings.signing_key, _session_id(request),
                           _field(form, web_session.CSRF_FIELD))


# -- users ---------------------------------------------------------------------------
def _grantable(principal: Principal) -> list[str]:
    return [r.value for r in Role if r != Role.SUPER_ADMIN or principal.is_super_admin]


def _users_page(request: Request, principal: Principal, *, cursor: str | None = None,
                error: AppError | None = None, form: dict[str, str] | None = None,
                code: int = 200) -> Response:
    c = _c(request)
    users, next_cursor = c.users.list(principal, cursor=cursor, limit=50, sort="email", desc=False)
    may_manage = allowed(principal.role, "users.manage")
    return _render(
        request, "users.html", code, nav="users", users=users, may_manage=may_manage,
        roles=_grantable(principal), next_url=_page_url("/users", {}, next_cursor),
        first_url="/users" if cursor else None, error=error, form=form or {},
    )


@router.get("/users")
def users_page(request: Request, cursor: str | None = None) -> Response:
    principal = _require(request)
    return _users_page(request, principal, cursor=cursor)


@router.post("/users")
async def create_user(request: Request) -> Response:
    form = await request.form()

    def run() -> Response:
        principal = _require(request)
        _check_form_csrf(request, form)
        values = {k: _field(form, k).strip() for k in ("email", "name", "role")}
        try:
            try:
                body = UserCreate.model_validate({**values, "password": _field(form, "password")})
            except ValidationError as exc:
                raise _validation(exc) from exc
            _c(request).users.create(principal, body, request_id=request_id_of(request.scope))
        except AppError as err:
            if err.status == 401:
                raise
            return _users_page(request, principal, error=err, form=values, code=err.status)
        return _redirect("/users?notice=user_created")

    return await run_in_threadpool(run)


@router.post("/users/{user_id}/role")
async def change_role(request: Request, user_id: str) -> Response:
    form = await request.form()

    def run() -> Response:
        principal = _require(request)
        uid = _uuid(user_id, "user")
        _check_form_csrf(request, form)
        version = _field(form, "version")
        try:
            try:
                body = UserUpdate.model_validate({"role": _field(form, "role")})
            except ValidationError as exc:
                raise _validation(exc) from exc
            _c(request).users.update(principal, uid, body,
                                     expected_version=int(version) if version.isdigit() else None,
                                     request_id=request_id_of(request.scope))
        except AppError as err:
            if err.status == 401:
                raise
            return _users_page(request, principal, error=err, code=err.status)
        return _redirect("/users?notice=role_changed")

    return await run_in_threadpool(run)


def install(api: FastAPI) -> None:
    """Mount the pages and their static files on the app."""
    api.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="web-static")
    api.include_router(router)

