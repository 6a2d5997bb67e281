"""Queries of the AI service: analyses, control suggestions, quality overrides, mapping
suggestions, and what it reads of other domains (imported controls, visible projects and
evidence). Vectors are the vector index's (studio/ai/vectors.py); changes to evidence go
through the evidence domain."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from studio.ai.controls import ControlText
from studio.ai.models import (
    ai_analyses,
    ai_mapping_suggestions,
    ai_quality_overrides,
    ai_suggestions,
)
from studio.domains.evidence.models import evidence
from studio.domains.frameworks.repository import FrameworkControlSource
from studio.domains.projects.models import projects
from studio.domains.projects.repository import project_scope
from studio.principal import Principal


class AiRepository:
    def __init__(self, conn: Connection):
        self.conn = conn

    # -- controls of the imported frameworks --------------------------------------------
    def frameworks(self, organization_id: uuid.UUID | None = None, *, every: bool = False) -> list[str]:
        """The frameworks an organization sees (the shared catalog and its own) by the names
        the index uses; `every` one only to build the index."""
        source = FrameworkControlSource(self.conn)
        return source.frameworks() if every else source.frameworks(organization_id)

    def framework_name(self, framework_id: uuid.UUID) -> str | None:
        return FrameworkControlSource(self.conn).name_of(framework_id)

    def framework_for(self, key: str, organization_id: uuid.UUID | None) -> str | None:
        """The index name of the framework an organization knows by `key`."""
        return FrameworkControlSource(self.conn).name_for(key, organization_id)

    def controls(self, framework: str) -> list[ControlText]:
        return [ControlText(framework, ref, title, statement)
                for ref, title, statement in FrameworkControlSource(self.conn).controls(framework)]

    # -- analyses -----------------------------------------------------------------------
    def replace_analysis(self, values: dict[str, Any]) -> None:
        """Keep one analysis per evidence item: the latest."""
        self.conn.execute(delete(ai_analyses).where(ai_analyses.c.evidence_id == values["evidence_id"]))
        self.conn.execute(insert(ai_analyses).values(**values))

    def analysis(self, evidence_id: uuid.UUID) -> RowMapping | None:
        return self.conn.execute(
            select(ai_analyses).where(ai_analyses.c.evidence_id == evidence_id)).mappings().first()

    def computed_score(self, evidence_id: uuid.UUID) -> float | None:
        score: float | None = self.conn.execute(
            select(ai_analyses.c.quality_score).where(ai_analyses.c.evidence_id == evidence_id)).scalar()
        return score

    def same_text(self, project_id: uuid.UUID, digest: str, evidence_id: uuid.UUID) -> uuid.UUID | None:
        """Another evidence item of the project whose analysed text has this digest."""
        other: uuid.UUID | None = self.conn.execute(
            select(ai_analyses.c.evidence_id).where(
                ai_analyses.c.project_id == project_id, ai_analyses.c.text_sha256 == digest,
                ai_analyses.c.evidence_id != evidence_id).limit(1)).scalar()
        return other

    def reset_analyses(self) -> None:
        """Forget analyses and open suggestions (for a replay); decided suggestions stay."""
        self.conn.execute(delete(ai_suggestions).where(ai_suggestions.c.status == "open"))
        self.conn.execute(delete(ai_analyses))

    # -- control suggestions ------------------------------------------------------------
    def drop_open_suggestions(self, evidence_id: uuid.UUID) -> None:
        self.conn.execute(delete(ai_suggestions).where(ai_suggestions.c.evidence_id == evidence_id,
                                                       ai_suggestions.c.status == "open"))

    def suggested_controls(self, evidence_id: uuid.UUID) -> set[tuple[str, str]]:
        """(framework, control ref) of every suggestion the evidence has."""
        rows = self.conn.execute(select(ai_suggestions.c.framework, ai_suggestions.c.control_ref)
                                 .where(ai_suggestions.c.evidence_id == evidence_id))
        return {(framework, ref) for framework, ref in rows}

    def add_suggestions(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.conn.execute(insert(ai_suggestions), rows)

    def suggestions(self, evidence_id: uuid.UUID) -> list[RowMapping]:
        return list(self.conn.execute(
            select(ai_suggestions).where(ai_suggestions.c.evidence_id == evidence_id)
            .order_by(ai_suggestions.c.rank, ai_suggestions.c.id)).mappings())

    def suggestion(self, suggestion_id: uuid.UUID) -> RowMapping | None:
        return self.conn.execute(
            select(ai_suggestions).where(ai_suggestions.c.id == suggestion_id)).mappings().first()

    def decide_suggestion(self, suggestion_id: uuid.UUID, status: str, decided_by: uuid.UUID,
                          decided_at: dt.datetime) -> None:
        self.conn.execute(update(ai_suggestions).where(ai_suggestions.c.id == suggestion_id).values(
            status=status, decided_by=decided_by, decided_at=decided_at))

    def decisions_by_rank(self, principal: Principal) -> list[tuple[int, str, int]]:
        """(rank, status, count) of the suggestions in the projects the caller may see."""
        scope = project_scope(principal, ai_suggestions.c.project_id, projects.c.organization_id)
        rows = self.conn.execute(
            select(ai_suggestions.c.rank, ai_suggestions.c.status, func.count())
            .join(projects, projects.c.id == ai_suggestions.c.project_id)
            .where(*scope).group_by(ai_suggestions.c.rank, ai_suggestions.c.status))
        return [(rank, status, n) for rank, status, n in rows]

    # -- quality overrides --------------------------------------------------------------
    def overrides(self, evidence_id: uuid.UUID) -> list[RowMapping]:
        return list(self.conn.execute(
            select(ai_quality_overrides).where(ai_quality_overrides.c.evidence_id == evidence_id)
            .order_by(ai_quality_overrides.c.created_at)).mappings())

    def is_overridden(self, evidence_id: uuid.UUID) -> bool:
        count: int = self.conn.execute(
            select(func.count()).select_from(ai_quality_overrides)
            .where(ai_quality_overrides.c.evidence_id == evidence_id)).scalar_one()
        return count > 0

    def add_override(self, values: dict[str, Any]) -> None:
        self.conn.execute(insert(ai_quality_overrides).values(**values))

    # -- what the caller may see, for search ----------------------------------------------
    def visible_project_ids(self, principal: Principal) -> list[uuid.UUID]:
        scope = project_scope(principal, projects.c.id, projects.c.organization_id)
        return list(self.conn.execute(select(projects.c.id).where(*scope)).scalars())

    def evidence_in(self, evidence_ids: Collection[uuid.UUID],
                    project_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, RowMapping]:
        """Those of the evidence items that belong to one of the projects, by id."""
        if not evidence_ids:
            return {}
        rows = self.conn.execute(select(evidence).where(
            evidence.c.id.in_(evidence_ids), evidence.c.project_id.in_(project_ids))).mappings()
        return {row["id"]: row for row in rows}

    # -- cross-framework mapping suggestions --------------------------------------------
    def mapping_pairs(self, source: str, target: str) -> set[tuple[str, str]]:
        """(source ref, target ref) of every mapping suggestion between the two frameworks."""
        rows = self.conn.execute(
            select(ai_mapping_suggestions.c.source_ref, ai_mapping_suggestions.c.target_ref).where(
                ai_mapping_suggestions.c.source_framework == source,
                ai_mapping_suggestions.c.target_framework == target))
        return {(source_ref, target_ref) for source_ref, target_ref in rows}

    def add_mapping_suggestions(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.conn.execute(insert(ai_mapping_suggestions), rows)

    def mapping_suggestions(self, source: str, target: str, limit: int) -> list[RowMapping]:
        """The best-scored first."""
        return list(self.conn.execute(
            select(ai_mapping_suggestions).where(
                ai_mapping_suggestions.c.source_framework == source,
                ai_mapping_suggestions.c.target_framework == target)
            .order_by(ai_mapping_suggestions.c.score.desc(), ai_mapping_suggestions.c.id).limit(limit)
        ).mappings())

    def mapping_suggestion(self, mapping_id: uuid.UUID) -> RowMapping | None:
        return self.conn.execute(select(ai_mapping_suggestions).where(
            ai_mapping_suggestions.c.id == mapping_id)).mappings().first()

    def decide_mapping(self, mapping_id: uuid.UUID, status: str, decided_by: uuid.UUID,
                       decided_at: dt.datetime) -> None:
        self.conn.execute(update(ai_mapping_suggestions).where(ai_mapping_suggestions.c.id == mapping_id)
                          .values(status=status, decided_by=decided_by, decided_at=decided_at))
