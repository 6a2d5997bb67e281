"""Queries of the evidence domain; project membership is part of every query."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.engine import RowMapping

from studio.db.repository import Repository
from studio.domains.evidence.models import evidence, reviews
from studio.domains.projects.models import project_members
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


class ReviewRepository(Repository):
    table = reviews
    sortable = frozenset({"created_at"})
