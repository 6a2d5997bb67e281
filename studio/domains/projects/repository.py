"""Queries of the projects domain; membership is enforced here, in every query."""

from __future__ import annotations

import functools
import uuid
from typing import Any

from sqlalchemy import ColumnElement, Select, Uuid, and_, bindparam, delete, insert, select
from sqlalchemy.engine import Connection, RowMapping

from studio.db.engine import utcnow
from studio.db.repository import Page, Repository
from studio.domains.projects.models import project_members, projects
from studio.domains.users.models import users
from studio.principal import Principal


def visible_project_ids(principal: Principal) -> Any:
    return select(project_members.c.project_id).where(project_members.c.user_id == principal.user_id)


def project_scope(principal: Principal, project_col: Any, org_col: Any) -> list[ColumnElement[bool]]:
    """The filter that hides every project the caller may not see."""
    if principal.is_super_admin:
        return []
    if principal.org_wide:
        return [org_col == principal.organization_id]
    return [org_col == principal.organization_id, project_col.in_(visible_project_ids(principal))]


@functools.cache
def _visible_project(shape: str) -> Select[Any]:
    """The project with the caller's member role in it, for each shape of `project_scope`
    ("all" for super_admins, "org" for admins, "member" for everyone else). Built once per
    shape with bound parameters: this runs on every project-scoped request, and building
    the statement cost more than running it (docs/benchmarks.md)."""
    user_id = bindparam("user_id", type_=Uuid())
    query = (
        select(projects, project_members.c.role.label("member_role"))
        .outerjoin(project_members, and_(project_members.c.project_id == projects.c.id,
                                         project_members.c.user_id == user_id))
        .where(projects.c.id == bindparam("project_id", type_=Uuid()))
    )
    if shape != "all":
        query = query.where(projects.c.organization_id == bindparam("org_id", type_=Uuid()))
    if shape == "member":
        query = query.where(project_members.c.role.is_not(None))
    return query


class ProjectRepository(Repository):
    table = projects
    sortable = frozenset({"created_at", "name", "updated_at"})

    def scope(self, principal: Principal) -> list[ColumnElement[bool]]:
        return project_scope(principal, projects.c.id, projects.c.organization_id)

    def get_visible(self, principal: Principal, project_id: uuid.UUID) -> tuple[RowMapping, str | None] | None:
        """The project and the caller's role in it, or None if they may not see it."""
        shape = "all" if principal.is_super_admin else "org" if principal.org_wide else "member"
        params = {"project_id": project_id, "user_id": principal.user_id,
                  "org_id": principal.organization_id}
        row = self.conn.execute(_visible_project(shape), params).mappings().first()
        if row is None:
            return None
        return row, principal.project_role(row["member_role"])

    def roles_for(self, principal: Principal, project_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        if not project_ids:
            return {}
        query = select(project_members.c.project_id, project_members.c.role).where(
            project_members.c.user_id == principal.user_id,
            project_members.c.project_id.in_(project_ids),
        )
        return {pid: role for pid, role in self.conn.execute(query)}

    def member_roles(self, user_id: uuid.UUID) -> set[str]:
        """The distinct roles the user holds in the projects they are a member of."""
        query = select(project_members.c.role).where(project_members.c.user_id == user_id).distinct()
        return set(self.conn.execute(query).scalars())

    def by_name(self, org_id: uuid.UUID, name: str) -> RowMapping | None:
        query = select(projects).where(projects.c.organization_id == org_id, projects.c.name == name)
        return self.conn.execute(query).mappings().first()


class MemberRepository:
    def __init__(self, conn: Connection):
        self.conn = conn

    def upsert(self, project_id: uuid.UUID, user_id: uuid.UUID, role: str) -> bool:
        """Add or change a member; True if they were new."""
        existing = self.get(project_id, user_id)
        if existing is None:
            self.conn.execute(insert(project_members).values(
                project_id=project_id, user_id=user_id, role=role, added_at=utcnow()))
            return True
        self.conn.execute(
            project_members.update()
            .where(project_members.c.project_id == project_id, project_members.c.user_id == user_id)
            .values(role=role)
        )
        return False

    def get(self, project_id: uuid.UUID, user_id: uuid.UUID) -> RowMapping | None:
        query = select(project_members).where(
            project_members.c.project_id == project_id, project_members.c.user_id == user_id
        )
        return self.conn.execute(query).mappings().first()

    def remove(self, project_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        result = self.conn.execute(delete(project_members).where(
            project_members.c.project_id == project_id, project_members.c.user_id == user_id))
        return result.rowcount > 0

    def list(self, project_id: uuid.UUID, *, after: uuid.UUID | None, limit: int) -> Page:
        query = (
            select(project_members, users.c.email, users.c.name)
            .join(users, users.c.id == project_members.c.user_id)
            .where(project_members.c.project_id == project_id)
        )
        if after is not None:
            query = query.where(project_members.c.user_id > after)
        rows = list(self.conn.execute(query.order_by(project_members.c.user_id).limit(limit + 1)).mappings())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = str(rows[-1]["user_id"])
        return Page(rows, next_cursor)
