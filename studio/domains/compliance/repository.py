"""Queries of the compliance domain: evidence-to-control links, applicability, the score's
inputs from the source tables, and the score projection's own tables."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, func, insert, literal, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from studio.domains.compliance.models import (
    compliance_controls,
    compliance_evidence,
    compliance_not_applicable,
    compliance_projects,
    evidence_controls,
    project_controls,
)
from studio.domains.evidence.models import evidence
from studio.domains.frameworks.models import control_mappings, controls
from studio.domains.frameworks.repository import mappings_visible_to
from studio.domains.projects.models import projects

BATCH = 500  # ids per IN list, so a statement's bound parameters stay few whatever the input


def _open_ended(expires_at: ColumnElement[Any]) -> ColumnElement[Any]:
    """How many of the grouped rows have no expiry."""
    return func.sum(case((expires_at.is_(None), 1), else_=0))


class ComplianceRepository:
    """The source of truth services write: links, applicability, and what the score reads
    from evidence and projects."""

    def __init__(self, conn: Connection):
        self.conn = conn

    # -- evidence-to-control links ------------------------------------------------------
    def linked_refs(self, evidence_id: uuid.UUID) -> set[str]:
        """The further control refs an evidence item is linked to (not its primary control)."""
        query = select(evidence_controls.c.control_ref).where(evidence_controls.c.evidence_id == evidence_id)
        return set(self.conn.execute(query).scalars())

    def add_links(self, evidence_id: uuid.UUID, project_id: uuid.UUID, refs: Iterable[str],
                  at: dt.datetime) -> None:
        """Link an evidence item to further controls."""
        rows = [{"evidence_id": evidence_id, "control_ref": ref, "project_id": project_id, "created_at": at}
                for ref in refs]
        if rows:
            self.conn.execute(insert(evidence_controls), rows)

    def remove_links(self, evidence_id: uuid.UUID) -> None:
        """Unlink an evidence item from every further control."""
        self.conn.execute(delete(evidence_controls).where(evidence_controls.c.evidence_id == evidence_id))

    # -- applicability ---------------------------------------------------------------------
    def not_applicable(self, project_id: uuid.UUID) -> dict[str, str]:
        """The refs the project marked not applicable, with the reason given for each."""
        query = select(project_controls.c.control_ref, project_controls.c.reason).where(
            project_controls.c.project_id == project_id, project_controls.c.applicable.is_(False))
        return {ref: reason for ref, reason in self.conn.execute(query)}

    def set_applicability(self, project_id: uuid.UUID, ref: str, *, applicable: bool, reason: str,
                          by: uuid.UUID, at: dt.datetime) -> None:
        """Mark a control applicable (no row: the default) or not applicable with a reason."""
        self.conn.execute(delete(project_controls).where(project_controls.c.project_id == project_id,
                                                         project_controls.c.control_ref == ref))
        if not applicable:
            self.conn.execute(insert(project_controls).values(
                project_id=project_id, control_ref=ref, applicable=False, reason=reason, updated_by=by,
                updated_at=at))

    # -- evidence and projects, as the score sees them --------------------------------------
    def scored_evidence(self, evidence_id: uuid.UUID) -> RowMapping | None:
        """An evidence item's project, status, expiry and primary control."""
        query = select(evidence.c.project_id, evidence.c.status, evidence.c.expires_at,
                       evidence.c.control_id).where(evidence.c.id == evidence_id)
        return self.conn.execute(query).mappings().first()

    def primary_controls(self, project_id: uuid.UUID) -> list[RowMapping]:
        """(id, control_id) of the project's evidence items that name a primary control."""
        query = select(evidence.c.id, evidence.c.control_id).where(
            evidence.c.project_id == project_id, evidence.c.control_id.is_not(None))
        return list(self.conn.execute(query).mappings())

    def framework_version(self, project_id: uuid.UUID) -> uuid.UUID | None:
        """The framework version the project is assessed against, if any."""
        query = select(projects.c.framework_version_id).where(projects.c.id == project_id)
        version_id: uuid.UUID | None = self.conn.execute(query).scalar()
        return version_id

    def move_to_version(self, project_id: uuid.UUID, version_id: uuid.UUID, framework: str,
                        at: dt.datetime) -> None:
        """Assess the project against another framework version."""
        self.conn.execute(update(projects).where(projects.c.id == project_id).values(
            framework_version_id=version_id, framework=framework, updated_at=at, version=projects.c.version + 1))

    def approved_by_primary(self, project_id: uuid.UUID) -> list[RowMapping]:
        """Per primary control as written: the count of approved evidence, of it without
        expiry, and its latest expiry."""
        query = (
            select(evidence.c.control_id, func.count().label("approved"),
                   _open_ended(evidence.c.expires_at).label("open_ended"),
                   func.max(evidence.c.expires_at).label("max_expiry"))
            .where(evidence.c.project_id == project_id, evidence.c.status == "approved",
                   evidence.c.control_id.is_not(None))
            .group_by(evidence.c.control_id)
        )
        return list(self.conn.execute(query).mappings())

    def approved_by_link(self, project_id: uuid.UUID) -> list[RowMapping]:
        """Per further link and primary control as written: the same counts as `approved_by_primary`."""
        ec = evidence_controls
        query = (
            select(ec.c.control_ref, evidence.c.control_id, func.count().label("approved"),
                   _open_ended(evidence.c.expires_at).label("open_ended"),
                   func.max(evidence.c.expires_at).label("max_expiry"))
            .select_from(ec).join(evidence, evidence.c.id == ec.c.evidence_id)
            .where(evidence.c.project_id == project_id, evidence.c.status == "approved",
                   ec.c.project_id == project_id)
            .group_by(ec.c.control_ref, evidence.c.control_id)
        )
        return list(self.conn.execute(query).mappings())

    def due_for_renewal(self, project_id: uuid.UUID, horizon: dt.date, limit: int) -> list[RowMapping]:
        """Approved evidence of the project expiring on or before `horizon`, soonest first."""
        query = (
            select(evidence.c.id, evidence.c.title, evidence.c.control_id, evidence.c.expires_at)
            .where(evidence.c.project_id == project_id, evidence.c.status == "approved",
                   evidence.c.expires_at.is_not(None), evidence.c.expires_at <= horizon)
            .order_by(evidence.c.expires_at, evidence.c.id).limit(limit)
        )
        return list(self.conn.execute(query).mappings())

    # -- coverage across projects ------------------------------------------------------------
    def covered_elsewhere(self, organization_id: uuid.UUID, project_id: uuid.UUID, on: dt.date, *,
                          only_project: uuid.UUID | None = None,
                          mapped_to: uuid.UUID | None = None) -> list[RowMapping]:
        """Controls covered on `on` in the organization's other projects: (id, project_id,
        name, ref, label), one row per project covering the control."""
        cc = compliance_controls
        other = projects.alias("other")
        query = (
            select(controls.c.id, other.c.id.label("project_id"), other.c.name, controls.c.ref, controls.c.label)
            .select_from(cc)
            .join(other, other.c.id == cc.c.project_id)
            .join(controls, and_(controls.c.version_id == other.c.framework_version_id,
                                 controls.c.ref == cc.c.control_ref))
            .where(other.c.organization_id == organization_id, other.c.id != project_id,
                   cc.c.approved > 0, or_(cc.c.open_ended > 0, cc.c.max_expiry >= on))
        )
        if only_project is not None:
            query = query.where(other.c.id == only_project)
        if mapped_to is not None:
            # Only the controls mapped to that one can cover it.
            seen = mappings_visible_to(organization_id)
            ends = select(control_mappings.c.target_id).where(control_mappings.c.source_id == mapped_to, seen).union(
                select(control_mappings.c.source_id).where(control_mappings.c.target_id == mapped_to, seen))
            query = query.where(controls.c.id.in_(ends))
        return list(self.conn.execute(query).mappings())

    def mappings_into(self, version_id: uuid.UUID, control_ids: list[uuid.UUID], organization_id: uuid.UUID, *,
                      only_control: uuid.UUID | None = None) -> list[tuple[str, RowMapping]]:
        """Mappings the organization sees (shared and its own) between a control of
        `version_id` and one of `control_ids`, as (direction,
        row of mine, theirs, relation, strength, mapping_id); "out" when mine is the source."""
        out: list[tuple[str, RowMapping]] = []
        mine = controls.alias("mine")
        for direction, mine_col, their_col in (("out", control_mappings.c.source_id, control_mappings.c.target_id),
                                               ("in", control_mappings.c.target_id, control_mappings.c.source_id)):
            for start in range(0, len(control_ids), BATCH):
                query = (
                    select(mine_col.label("mine"), their_col.label("theirs"), control_mappings.c.relation,
                           control_mappings.c.strength, control_mappings.c.id.label("mapping_id"))
                    .select_from(control_mappings)
                    .join(mine, mine.c.id == mine_col)
                    .where(their_col.in_(control_ids[start:start + BATCH]), mine.c.version_id == version_id,
                           mappings_visible_to(organization_id))
                )
                if only_control is not None:
                    query = query.where(mine_col == only_control)
                out.extend((direction, row) for row in self.conn.execute(query).mappings())
        return out


class ScoreRepository:
    """The score projection's tables (compliance_*); only its consumer writes them."""

    def __init__(self, conn: Connection):
        self.conn = conn

    # -- reads -------------------------------------------------------------------------------
    def position(self, project_id: uuid.UUID) -> int | None:
        """The position of the last event folded into the project's rows; None before the first."""
        query = select(compliance_projects.c.position).where(compliance_projects.c.project_id == project_id)
        position: int | None = self.conn.execute(query).scalar()
        return position

    def framework_version(self, project_id: uuid.UUID) -> uuid.UUID | None:
        """The framework version the projection last saw the project move to."""
        query = select(compliance_projects.c.framework_version_id).where(
            compliance_projects.c.project_id == project_id)
        version_id: uuid.UUID | None = self.conn.execute(query).scalar()
        return version_id

    def stored_score(self, project_id: uuid.UUID) -> RowMapping | None:
        """The score as of the last event: score, scored_on, valid_until and summary."""
        query = select(compliance_projects.c.score, compliance_projects.c.scored_on,
                       compliance_projects.c.valid_until, compliance_projects.c.summary).where(
            compliance_projects.c.project_id == project_id)
        return self.conn.execute(query).mappings().first()

    def coverage(self, project_id: uuid.UUID) -> list[RowMapping]:
        """Per covered ref: control_ref, approved, open_ended and max_expiry."""
        cc = compliance_controls
        query = select(cc.c.control_ref, cc.c.approved, cc.c.open_ended, cc.c.max_expiry).where(
            cc.c.project_id == project_id)
        return list(self.conn.execute(query).mappings())

    def not_applicable_refs(self, project_id: uuid.UUID) -> set[str]:
        """The refs the project's events marked not applicable."""
        query = select(compliance_not_applicable.c.control_ref).where(
            compliance_not_applicable.c.project_id == project_id)
        return set(self.conn.execute(query).scalars())

    def evidence_refs(self, evidence_id: uuid.UUID) -> set[str]:
        """The refs an evidence item counted for, as of its last event."""
        query = select(compliance_evidence.c.control_ref).where(compliance_evidence.c.evidence_id == evidence_id)
        return set(self.conn.execute(query).scalars())

    # -- writes ------------------------------------------------------------------------------
    def advance(self, project_id: uuid.UUID, position: int, *, first: bool) -> None:
        """Record that the project's rows include the event at `position`."""
        if first:
            self.conn.execute(insert(compliance_projects).values(project_id=project_id, framework_version_id=None,
                                                                 position=position))
        else:
            self.conn.execute(update(compliance_projects).where(compliance_projects.c.project_id == project_id)
                              .values(position=position))

    def set_version(self, project_id: uuid.UUID, version_id: uuid.UUID | None) -> None:
        """Note the framework version the project moved to."""
        self.conn.execute(update(compliance_projects).where(compliance_projects.c.project_id == project_id)
                          .values(framework_version_id=version_id))

    def set_applicability(self, project_id: uuid.UUID, ref: str, *, applicable: bool, reason: str) -> None:
        """Mark a ref applicable (no row) or not applicable with a reason."""
        cna = compliance_not_applicable
        self.conn.execute(delete(cna).where(cna.c.project_id == project_id, cna.c.control_ref == ref))
        if not applicable:
            self.conn.execute(insert(cna).values(project_id=project_id, control_ref=ref, reason=reason))

    def replace_evidence(self, evidence_id: uuid.UUID, project_id: uuid.UUID, refs: Iterable[str], *,
                         approved: bool, expires: dt.date | None) -> None:
        """Put the evidence item's rows, one per ref it counts for, in place of its old ones."""
        self.conn.execute(delete(compliance_evidence).where(compliance_evidence.c.evidence_id == evidence_id))
        rows = [{"evidence_id": evidence_id, "control_ref": ref, "project_id": project_id, "approved": approved,
                 "expires_at": expires} for ref in refs]
        if rows:
            self.conn.execute(insert(compliance_evidence), rows)

    def aggregate(self, project_id: uuid.UUID, refs: Iterable[str]) -> None:
        """Recount the per-control rows of `refs` from the project's evidence rows."""
        ref_list = sorted(refs)
        if not ref_list:
            return
        ce, cc = compliance_evidence, compliance_controls
        self.conn.execute(delete(cc).where(cc.c.project_id == project_id, cc.c.control_ref.in_(ref_list)))
        counts = (
            select(literal(project_id, cc.c.project_id.type).label("project_id"),
                   ce.c.control_ref,
                   func.count().label("approved"),
                   _open_ended(ce.c.expires_at).label("open_ended"),
                   func.max(ce.c.expires_at).label("max_expiry"))
            .where(ce.c.project_id == project_id, ce.c.control_ref.in_(ref_list), ce.c.approved.is_(True))
            .group_by(ce.c.control_ref)
        )
        self.conn.execute(insert(cc).from_select(
            ["project_id", "control_ref", "approved", "open_ended", "max_expiry"], counts))

    def save_score(self, project_id: uuid.UUID, score: float, *, on: dt.date, valid_until: dt.date | None,
                   summary: str) -> None:
        """Store the project's score as of `on`, here and on the project itself."""
        self.conn.execute(update(compliance_projects).where(compliance_projects.c.project_id == project_id).values(
            score=score, scored_on=on, summary=summary, valid_until=valid_until))
        self.conn.execute(update(projects).where(projects.c.id == project_id).values(compliance_score=score))

    def forget(self, project_id: uuid.UUID) -> None:
        """Drop everything known about a deleted project, keeping its position."""
        for table in (compliance_evidence, compliance_controls, compliance_not_applicable):
            self.conn.execute(delete(table).where(table.c.project_id == project_id))
        self.conn.execute(update(compliance_projects).where(compliance_projects.c.project_id == project_id)
                          .values(framework_version_id=None, score=None, scored_on=None, valid_until=None,
                                  summary=None))

    def reset(self) -> None:
        """Empty the projection (before a replay) and zero every project's score."""
        for table in (compliance_evidence, compliance_controls, compliance_not_applicable, compliance_projects):
            self.conn.execute(delete(table))
        self.conn.execute(update(projects).values(compliance_score=0.0))
