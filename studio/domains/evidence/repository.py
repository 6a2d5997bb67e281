"""Queries of the evidence domain; project membership is part of every query."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.engine import RowMapping

from studio.db.repository import Page, Repository, decode_cursor, encode_cursor
from studio.domains.evidence.models import evidence, reviews
from studio.domains.projects.models import project_members, projects
from studio.domains.projects.repository import project_scope
from studio.principal import Principal


class EvidenceRepository(Repository):
    table = evidence
    sortable = frozenset({"created_at", "updated_at", "title"})

    def scope(self, principal: Principal) -> list[ColumnElement[bool]]:
        return project_scope(principal, evidence.c.project_id, evidence.c.organization_id)

    def get_visible(self, principal: Principal, evidence_id: uuid.UUID) -> tuple[RowMapping, str | None] | None:
        """The evidence and the caller's role in its project, or None if invisible."""
        query = (
            select(evidence, project_members.c.role.label("member_role"))
            .outerjoin(
                project_members,
                and_(
                    project_members.c.project_id == evidence.c.project_id,
                    project_members.c.user_id == principal.user_id,
                ),
            )
            .where(evidence.c.id == evidence_id, *self.scope(principal))
        )
        row = self.conn.execute(query).mappings().first()
        if row is None:
            return None
        return row, principal.project_role(row["member_role"])

    def count_by_status(
        self, principal: Principal, project_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, dict[str, int]]:
        """Evidence counts per project and status, for the projects the caller may see."""
        if not project_ids:
            return {}
        query = (
            select(evidence.c.project_id, evidence.c.status, func.count())
            .where(evidence.c.project_id.in_(project_ids), *self.scope(principal))
            .group_by(evidence.c.project_id, evidence.c.status)
        )
        counts: dict[uuid.UUID, dict[str, int]] = {}
        for project_id, status, n in self.conn.execute(query):
            counts.setdefault(project_id, {})[status] = int(n)
        return counts

    def set_computed_quality(self, evidence_id: uuid.UUID, score: float) -> None:
        """Store the AI service's quality score: a derived value, so not a new version
        (an edit in flight keeps its If-Match)."""
        self.conn.execute(update(evidence).where(evidence.c.id == evidence_id).values(quality_score=score))

    def review_queue(self, principal: Principal, member_roles: Collection[str], status: str, *,
                     oldest_first: bool, cursor: str | None, limit: int) -> Page:
        """Evidence in `status` that the caller did not create, in every project where
        their role is one of `member_roles` (admins: every project of their organization),
        by last change, keyset-paged; each row carries its project's name and the caller's
        member role there. Admins' pages walk ix_evidence_org_status_updated in order."""
        member_role = project_members.c.role
        query = (
            select(evidence, projects.c.name.label("project_name"), member_role.label("member_role"))
            .join(projects, projects.c.id == evidence.c.project_id)
            .outerjoin(project_members, and_(project_members.c.project_id == evidence.c.project_id,
                                             project_members.c.user_id == principal.user_id))
            .where(evidence.c.status == status,
                   or_(evidence.c.created_by.is_(None), evidence.c.created_by != principal.user_id))
        )
        if not principal.is_super_admin:
            query = query.where(evidence.c.organization_id == principal.organization_id)
        if not principal.org_wide:
            query = query.where(member_role.in_(sorted(member_roles)))
        if cursor:
            value, last_id = decode_cursor(cursor, "updated_at", not oldest_first, dt.datetime)
            if oldest_first:
                query = query.where(or_(evidence.c.updated_at > value,
                                        and_(evidence.c.updated_at == value, evidence.c.id > last_id)))
            else:
                query = query.where(or_(evidence.c.updated_at < value,
                                        and_(evidence.c.updated_at == value, evidence.c.id < last_id)))
        order = ((evidence.c.updated_at.asc(), evidence.c.id.asc()) if oldest_first
                 else (evidence.c.updated_at.desc(), evidence.c.id.desc()))
        rows = list(self.conn.execute(query.order_by(*order).limit(limit + 1)).mappings())
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor("updated_at", not oldest_first, rows[-1]["updated_at"],
                                        rows[-1]["id"])
        return Page(rows, next_cursor)

    def count_in_queue(self, principal: Principal, member_roles: Collection[str], status: str) -> int:
        """How many rows `review_queue` walks through in all."""
        query = (
            select(func.count()).select_from(evidence)
            .outerjoin(project_members, and_(project_members.c.project_id == evidence.c.project_id,
                                             project_members.c.user_id == principal.user_id))
            .where(evidence.c.status == status,
                   or_(evidence.c.created_by.is_(None), evidence.c.created_by != principal.user_id))
        )
        if not principal.is_super_admin:
            query = query.where(evidence.c.organization_id == principal.organization_id)
        if not principal.org_wide:
            query = query.where(project_members.c.role.in_(sorted(member_roles)))
        return int(self.conn.execute(query).scalar_one())


class ReviewRepository(Repository):
    table = reviews
    sortable = frozenset({"created_at"})
