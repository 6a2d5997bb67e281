"""Queries of the users domain."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import (
    LABEL_STYLE_TABLENAME_PLUS_COL,
    Uuid,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal_column,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.engine import Connection, RowMapping

from studio.compiled import CompiledSelect, DriverQuery
from studio.domains.auth.models import refresh_tokens
from studio.domains.projects.models import project_members, projects
from studio.domains.users.models import organizations, users
from studio.permissions import Role
from studio.principal import AuthInfo, Principal
from studio.repository import Repository, WirePageRequest, WirePage


class OrganizationRepository(Repository):
    table = organizations
    sortable = frozenset({"created_at", "name"})

    def by_name(self, name: str) -> RowMapping | None:
        return self.conn.execute(select(organizations).where(organizations.c.name == name)).mappings().first()


class UserRepository(Repository):
    table = users
    sortable = frozenset({"created_at", "email", "name"})

    def by_email(self, email: str) -> RowMapping | None:
        query = select(users).where(func.lower(users.c.email) == email.lower())
        return self.conn.execute(query).mappings().first()

    def scope(self, principal: Principal) -> list:
        """Users visible to the caller: their organization (every one, for super_admin)."""
        if principal.is_super_admin:
            return []
        return [users.c.organization_id == principal.organization_id]


# Built once: constructing a select() costs more than running this one-row lookup.
_PRINCIPAL = select(
    users.c.id,
    users.c.organization_id,
    users.c.role,
    users.c.email,
    users.c.name,
    users.c.is_active,
).where(users.c.id == bindparam("user_id"))
_PRINCIPAL_IN_SESSION = _PRINCIPAL.add_columns(
    exists()
    .where(refresh_tokens.c.family_id == bindparam("session_id"), refresh_tokens.c.revoked_at.is_not(None))
    .label("revoked")
)



def _with_project(query):  # type: ignore[no-untyped-def]
    """`query` plus one project (whatever the caller may see of it) and the caller's
    member role in it, outer-joined so that the caller's row comes back either way."""
    project_id = bindparam("project_id", type_=Uuid())
    joined = users.outerjoin(projects, projects.c.id == project_id).outerjoin(
        project_members,
        and_(project_members.c.project_id == projects.c.id, project_members.c.user_id == users.c.id),
    )
    return (query.add_columns(projects, project_members.c.role.label("member_role"))
            .select_from(joined).set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL))


def _with_page(caller_query, page: WirePage):  # type: ignore[no-untyped-def]
    """The caller's row (`caller_query`) and a list page in one statement: one row per
    item in the page's order, the caller's columns on the first row only (NULL on the
    others: decoding them again on every row cost more than a second statement), and
    one row with the page's columns NULL when the page is empty."""
    caller = caller_query.subquery("caller")
    items = page.query.subquery("page")
    order = ((items.c[page.sort].desc(), items.c.id.desc()) if page.desc
             else (items.c[page.sort].asc(), items.c.id.asc()))
    # Numbered after the LIMIT: at most a page of rows, whatever the project holds.
    numbered = select(*items.c, func.row_number().over(order_by=order).label("page_row")).subquery("numbered")
    row = numbered.c.page_row
    first = or_(row == literal_column("1"), row.is_(None))
    return (select(*(case((first, column), else_=null()).label(key) for key, column in caller.c.items()),
                   *(numbered.c[key] for key in items.c.keys()))
            .select_from(caller.outerjoin(numbered, true()))
            .order_by(numbered.c.page_row))


# Run on every authenticated request: compiled once, run on the driver's cursor.
_CALLER = DriverQuery(_PRINCIPAL)
_CALLER_IN_SESSION = DriverQuery(_PRINCIPAL_IN_SESSION)
_CALLER_AND_PROJECT = DriverQuery(_with_project(_PRINCIPAL))
_CALLER_IN_SESSION_AND_PROJECT = DriverQuery(_with_project(_PRINCIPAL_IN_SESSION))
_PROJECT_KEYS = tuple((f"projects_{c.name}", c.name) for c in projects.c)
# (in a session, page key) -> the caller, the project and the page in one statement.
_CALLER_PROJECT_AND_PAGE: dict[tuple[bool, tuple[Any, ...]], CompiledSelect] = {}


def load_principal(conn: Connection, auth: AuthInfo, project_id: uuid.UUID | None = None, *,
                   along: WirePageRequest | None = None) -> Principal | None:
    """The caller as of now: None if the user is gone, inactive or their session revoked.

    With `project_id`, the same query also loads that project and the caller's member
    role in it (Principal.project), so a project-scoped read needs no second lookup.
    With `along` (a page of a list in that project), on PostgreSQL it also fetches that
    page's rows into `along.rows`: the caller, the project and the page in one round
    trip. The rows are read whether or not the caller may see them; the caller decides
    that afterwards (visible_project) and drops them if not. SQLite has no round trip to
    save, and the joined statement costs it more than the two simple ones
    (docs/benchmarks.md): there `along` is left for its own statement.
    """
    params: dict[str, object] = {"user_id": auth.user_id}
    in_session = auth.session_id is not None
    if in_session:
        params["session_id"] = auth.session_id
    if project_id is None:
        row = (_CALLER_IN_SESSION if in_session else _CALLER).first(conn, params)
        prefix = ""
    else:
        params["project_id"] = project_id
        if along is None or conn.dialect.name == "sqlite":
            query = _CALLER_IN_SESSION_AND_PROJECT if in_session else _CALLER_AND_PROJECT
            row = query.first(conn, params)
        else:
            row = _caller_and_page(conn, in_session, params, along)
        prefix = "users_"
    if row is None or not row[f"{prefix}is_active"] or row.get("revoked", False):
        return None
    if row[f"{prefix}organization_id"] != auth.organization_id:
        return None
    project = None
    if project_id is not None:
        found = None
        if row["projects_id"] is not None:
            found = {name: row[key] for key, name in _PROJECT_KEYS}
        project = (project_id, found, row["member_role"])
    return Principal(
        user_id=row[f"{prefix}id"],
        organization_id=row[f"{prefix}organization_id"],
        role=Role(row[f"{prefix}role"]),
        email=row[f"{prefix}email"],
        name=row[f"{prefix}name"],
        via=auth.kind,
        token_id=auth.token_id,
        project=project,
    )


def _caller_and_page(conn: Connection, in_session: bool, params: dict[str, object],
                     along: WirePageRequest) -> dict[str, Any] | None:
    """Run the caller + project query with `along`'s page joined to it; the caller's row
    (as `query.first` returns it) and the page's driver rows in `along.rows`."""
    key = (in_session, along.page.key)
    combined = _CALLER_PROJECT_AND_PAGE.get(key)
    if combined is None:
        base = _PRINCIPAL_IN_SESSION if in_session else _PRINCIPAL
        combined = _CALLER_PROJECT_AND_PAGE[key] = CompiledSelect.build(
            _with_page(_with_project(base), along.page), conn.dialect)
    rows = combined.fetchall(conn, {**params, **along.params})
    if not rows:  # no such user
        along.rows = []
        return None
    width = len(combined.keys) - len(along.page.query.selected_columns)
    empty = rows[0][width + along.page.id_index] is None  # the outer join's row of NULLs
    along.rows = [] if empty else [row[width:] for row in rows]
    return combined.mapping(rows[0], width)


def new_user_id() -> uuid.UUID:
    return uuid.uuid4()
