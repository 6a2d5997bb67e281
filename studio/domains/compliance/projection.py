"""The compliance score projection: a Consumer of evidence and project events.

Each evidence event carries the evidence's scoring state (status, expiry, linked control
refs), so the projection is a fold of the event stream alone: replaying it from position 0
gives the same tables and scores, and folding a project's events up to a date gives the
score as of that date. Per event it rewrites one evidence's rows, re-aggregates only the
controls that evidence touched, and re-scores the one project (writes projects.compliance_score).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from sqlalchemy import case, delete, func, insert, literal, select, update
from sqlalchemy.engine import Connection

from studio.domains.compliance.models import (
    compliance_controls,
    compliance_evidence,
    compliance_not_applicable,
    compliance_projects,
)
from studio.domains.compliance.scoring import (
    APPLICABILITY_EVENT,
    EVIDENCE_PREFIX,
    SUBSCRIPTIONS,
    VERSION_EVENT,
    evidence_state_from,
)
from studio.domains.frameworks.repository import version_index
from studio.domains.projects.models import projects

if TYPE_CHECKING:
    from studio.db.engine import UnitOfWork
    from studio.events.envelope import StoredEvent


def score_from_projection(conn: Connection, project_id: uuid.UUID, on: dt.date) -> dict[str, Any]:
    """The score and status counts as of `on`, from the projection tables.

    Reads only the project's per-control rows (at most one per control, never evidence rows)
    and its not-applicable refs; the version's weights come from a per-process cache.
    """
    version_id = conn.execute(select(compliance_projects.c.framework_version_id)
                              .where(compliance_projects.c.project_id == project_id)).scalar()
    counts = {"covered": 0, "expired": 0, "missing": 0, "not_applicable": 0}
    if version_id is None:
        return {"score": 0.0, "frameworkVersionId": None, "applicableWeight": 0.0, "coveredWeight": 0.0,
                "counts": counts, "validUntil": None}
    weights = version_index(conn, version_id).weights
    cc = compliance_controls
    state = {ref: (approved, open_ended, max_expiry) for ref, approved, open_ended, max_expiry in conn.execute(
        select(cc.c.control_ref, cc.c.approved, cc.c.open_ended, cc.c.max_expiry).where(cc.c.project_id == project_id))}
    na = set(conn.execute(select(compliance_not_applicable.c.control_ref).where(
        compliance_not_applicable.c.project_id == project_id)).scalars())
    total = covered_w = 0.0
    valid_until: dt.date | None = None
    for ref, weight in weights.items():
        if ref in na:
            counts["not_applicable"] += 1
            continue
        total += weight
        row = state.get(ref)
        if row is None or row[0] == 0:
            counts["missing"] += 1
        elif row[1] > 0 or (row[2] is not None and row[2] >= on):
            counts["covered"] += 1
            covered_w += weight
            if row[1] == 0 and (valid_until is None or row[2] < valid_until):
                valid_until = row[2]
        else:
            counts["expired"] += 1
    value = round(100.0 * covered_w / total, 2) if total else 0.0
    return {"score": value, "frameworkVersionId": str(version_id), "applicableWeight": total,
            "coveredWeight": covered_w, "counts": counts,
            "validUntil": valid_until.isoformat() if valid_until else None}


def read_score(conn: Connection, project_id: uuid.UUID, on: dt.date) -> dict[str, Any]:
    """The score as of `on` (today or later): the stored one while no covering evidence has
    expired since it was computed (one primary-key read), else computed from the projection."""
    row = conn.execute(select(compliance_projects.c.score, compliance_projects.c.scored_on,
                              compliance_projects.c.valid_until, compliance_projects.c.summary)
                       .where(compliance_projects.c.project_id == project_id)).first()
    if (row is not None and row.summary is not None and row.scored_on is not None and on >= row.scored_on
            and (row.valid_until is None or on <= row.valid_until)):
        return orjson.loads(row.summary)
    return score_from_projection(conn, project_id, on)


class ComplianceScoreProjection:
    """Keeps compliance_* tables and projects.compliance_score in step with the event stream."""

    name: ClassVar[str] = "compliance-score"
    subscriptions: ClassVar[tuple[str, ...]] = SUBSCRIPTIONS
    side_effects: ClassVar[bool] = False

    def handle(self, uow: UnitOfWork, event: StoredEvent) -> None:
        data = event.data
        if "projectId" not in data:
            return
        project_id = uuid.UUID(str(data["projectId"]))
        conn = uow.conn
        last = conn.execute(select(compliance_projects.c.position)
                            .where(compliance_projects.c.project_id == project_id)).scalar()
        if last is not None and event.position <= last:
            return  # delivered again: this project's state already includes it
        if last is None:
            conn.execute(insert(compliance_projects).values(project_id=project_id, framework_version_id=None,
                                                            position=event.position))
        conn.execute(update(compliance_projects).where(compliance_projects.c.project_id == project_id)
                     .values(position=event.position))
        if event.type == "project.deleted":
            self._forget(conn, project_id)
            return
        if event.type == "project.created":
            if data.get("frameworkVersionId"):
                self._set_version(conn, project_id, data["frameworkVersionId"])
        elif event.type == VERSION_EVENT:
            self._set_version(conn, project_id, data.get("frameworkVersionId"))
        elif event.type == APPLICABILITY_EVENT:
            ref = data["controlRef"]
            conn.execute(delete(compliance_not_applicable).where(
                compliance_not_applicable.c.project_id == project_id, compliance_not_applicable.c.control_ref == ref))
            if not data.get("applicable"):
                conn.execute(insert(compliance_not_applicable).values(
                    project_id=project_id, control_ref=ref, reason=data.get("reason") or ""))
        elif event.type.startswith(EVIDENCE_PREFIX) and "evidenceId" in data:
            evidence_id = uuid.UUID(str(data["evidenceId"]))
            state = None if event.type == "evidence.deleted" else evidence_state_from(data)
            if state is None and event.type != "evidence.deleted":
                return  # an evidence event without scoring state changes nothing scored
            old = set(conn.execute(select(compliance_evidence.c.control_ref)
                                   .where(compliance_evidence.c.evidence_id == evidence_id)).scalars())
            conn.execute(delete(compliance_evidence).where(compliance_evidence.c.evidence_id == evidence_id))
            new: set[str] = set()
            if state is not None:
                new = set(state.refs)
                if new:
                    conn.execute(insert(compliance_evidence), [
                        {"evidence_id": evidence_id, "control_ref": ref, "project_id": project_id,
                         "approved": state.approved, "expires_at": state.expires} for ref in sorted(new)])
            self._aggregate(conn, project_id, old | new)
        else:
            return
        on = event.timestamp.astimezone(dt.UTC).date()
        result = score_from_projection(conn, project_id, on)
        conn.execute(update(compliance_projects).where(compliance_projects.c.project_id == project_id).values(
            score=result["score"], scored_on=on, summary=orjson.dumps(result).decode(),
            valid_until=dt.date.fromisoformat(result["validUntil"]) if result["validUntil"] else None))
        conn.execute(update(projects).where(projects.c.id == project_id)
                     .values(compliance_score=result["score"]))

    def reset(self, conn: Connection) -> None:
        for table in (compliance_evidence, compliance_controls, compliance_not_applicable, compliance_projects):
            conn.execute(delete(table))
        conn.execute(update(projects).values(compliance_score=0.0))

    @staticmethod
    def _set_version(conn: Connection, project_id: uuid.UUID, version_id: Any) -> None:
        conn.execute(update(compliance_projects).where(compliance_projects.c.project_id == project_id)
                     .values(framework_version_id=uuid.UUID(str(version_id)) if version_id else None))

    @staticmethod
    def _forget(conn: Connection, project_id: uuid.UUID) -> None:
        for table in (compliance_evidence, compliance_controls, compliance_not_applicable):
            conn.execute(delete(table).where(table.c.project_id == project_id))
        conn.execute(update(compliance_projects).where(compliance_projects.c.project_id == project_id)
                     .values(framework_version_id=None, score=None, scored_on=None, valid_until=None, summary=None))

    @staticmethod
    def _aggregate(conn: Connection, project_id: uuid.UUID, refs: set[str]) -> None:
        if not refs:
            return
        ce = compliance_evidence
        ref_list = sorted(refs)
        conn.execute(delete(compliance_controls).where(compliance_controls.c.project_id == project_id,
                                                       compliance_controls.c.control_ref.in_(ref_list)))
        aggregate = (
            select(literal(project_id, compliance_controls.c.project_id.type).label("project_id"),
                   ce.c.control_ref,
                   func.count().label("approved"),
                   func.sum(case((ce.c.expires_at.is_(None), 1), else_=0)).label("open_ended"),
                   func.max(ce.c.expires_at).label("max_expiry"))
            .where(ce.c.project_id == project_id, ce.c.control_ref.in_(ref_list), ce.c.approved.is_(True))
            .group_by(ce.c.control_ref)
        )
        conn.execute(insert(compliance_controls).from_select(
            ["project_id", "control_ref", "approved", "open_ended", "max_expiry"], aggregate))
