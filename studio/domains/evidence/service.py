"""Use cases of the evidence domain: metadata and the review workflow (whose rules are in
workflow.py); each decision is kept as a review record."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.engine import Connection, RowMapping

from studio.db.engine import Database, UnitOfWork, utcnow
from studio.domains.compliance.service import evidence_state, link_one_control
from studio.domains.evidence import workflow
from studio.domains.evidence.repository import EvidenceRepository, ReviewRepository
from studio.domains.evidence.schemas import (
    EvidenceCreate,
    EvidenceStatus,
    EvidenceUpdate,
    ReviewCreate,
)
from studio.domains.projects.repository import ProjectRepository
from studio.domains.projects.service import stream_of, visible_project
from studio.errors import AppError, forbidden, not_found
from studio.permissions import allowed
from studio.principal import Principal
from studio.records import record

EVIDENCE_FIELDS = (
    "id", "organization_id", "project_id", "title", "description", "control_id", "status",
    "quality_score", "effective_date", "expires_at", "created_by", "created_at", "updated_at",
    "version",
)  # fmt: skip
REVIEW_FIELDS = ("id", "evidence_id", "project_id", "reviewer_id", "decision", "comment", "created_at")


def evidence_wire(row: Any) -> dict[str, Any]:
    return record(row, EVIDENCE_FIELDS)


def subject(principal: Principal, role: str | None, row: Any) -> workflow.Subject:
    """The workflow's view of one evidence row and its caller."""
    return workflow.Subject(principal, role, row["created_by"], row["status"])


class EvidenceService:
    def __init__(self, db: Database):
        self.db = db

    def _visible(self, conn: Connection, principal: Principal,
                 evidence_id: uuid.UUID) -> tuple[RowMapping, str]:
        """The evidence and the caller's role in its project (404 if they may not see it)."""
        found = EvidenceRepository(conn).get_visible(principal, evidence_id)
        if found is None:
            raise not_found("evidence")
        row, role = found
        if role is None:
            raise not_found("evidence")
        return row, role

    def list_for_project(self, principal: Principal, project_id: uuid.UUID, *, cursor: str | None,
                         limit: int, sort: str, desc: bool, status: str | None = None,
                         control_id: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """A page of a project's evidence the caller may read (404/403 otherwise)."""
        equal: dict[str, Any] = {"project_id": project_id}
        if status:
            equal["status"] = status
        if control_id:
            equal["control_id"] = control_id
        with self.db.read() as conn:
            visible_project(conn, principal, project_id, "evidence.read")
            page = EvidenceRepository(conn).find_all(equal=equal, cursor=cursor, limit=limit,
                                                     sort=sort, desc=desc)
            return [evidence_wire(row) for row in page.items], page.next_cursor

    def status_counts(
        self, principal: Principal, project_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, dict[str, int]]:
        """Count evidence by status in each of the given projects the caller may see."""
        with self.db.read() as conn:
            return EvidenceRepository(conn).count_by_status(principal, project_ids)

    def get(self, principal: Principal, evidence_id: uuid.UUID) -> dict[str, Any]:
        with self.db.read() as conn:
            row, role = self._visible(conn, principal, evidence_id)
            if not allowed(role, "evidence.read"):
                raise forbidden("evidence.read")
            return evidence_wire(row)

    def create(self, principal: Principal, project_id: uuid.UUID, body: EvidenceCreate, *,
               request_id: str | None = None) -> dict[str, Any]:
        """Record a new piece of evidence in a project, pending review."""
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            project, _ = visible_project(uow.conn, principal, project_id, "evidence.create")
            if project["status"] == "archived":
                raise AppError("conflict", "the project is archived; no new evidence")
            now = utcnow()
            evidence_id = uuid.uuid4()
            row = EvidenceRepository(uow.conn).create({
                "id": evidence_id, "organization_id": project["organization_id"],
                "project_id": project_id, "title": body.title, "description": body.description,
                "control_id": body.controlId, "status": EvidenceStatus.PENDING.value,
                "quality_score": None, "effective_date": body.effectiveDate,
                "expires_at": body.expiresAt, "created_by": principal.user_id,
                "created_at": now, "updated_at": now, "version": 1,
            })
            uow.touch(project["organization_id"])
            uow.emit("evidence.created", stream_of(project_id), {
                "evidenceId": str(evidence_id), "projectId": str(project_id), "title": body.title,
                "controlId": body.controlId, "createdBy": str(principal.user_id),
                "state": evidence_state(uow.conn, evidence_id),
            })
            return evidence_wire(row)

    def update(self, principal: Principal, evidence_id: uuid.UUID, body: EvidenceUpdate, *,
               expected_version: int | None, request_id: str | None = None) -> dict[str, Any]:
        changes = body.model_dump(exclude_unset=True)
        if not changes:
            raise AppError("validation_error", "nothing to update",
                           details=[{"field": "body", "message": "send at least one field"}])
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            row, role = self._visible(uow.conn, principal, evidence_id)
            if "qualityScore" in changes:
                # A reviewer's override of the quality score; allowed in any state.
                workflow.check_override_quality(subject(principal, role, row))
            if set(changes) - {"qualityScore"}:
                workflow.check_edit(subject(principal, role, row))
            names = {"title": "title", "description": "description", "controlId": "control_id",
                     "effectiveDate": "effective_date", "expiresAt": "expires_at",
                     "qualityScore": "quality_score"}
            values: dict[str, Any] = {names[k]: v for k, v in changes.items()}
            for field, column in (("title", "title"), ("description", "description")):
                if column in values and values[column] is None:
                    raise AppError("validation_error", f"{field} cannot be null",
                                   details=[{"field": field, "message": "cannot be null"}])
            eff = values.get("effective_date", row["effective_date"])
            exp = values.get("expires_at", row["expires_at"])
            if eff and exp and exp < eff:
                raise AppError("validation_error", details=[{"field": "expiresAt", "message": "must not be before effectiveDate"}])
            if row["status"] == EvidenceStatus.REJECTED and set(changes) - {"qualityScore"}:
                values["status"] = EvidenceStatus.PENDING.value
            values["updated_at"] = utcnow()
            new = EvidenceRepository(uow.conn).update(evidence_id, values, expected_version=expected_version)
            assert new is not None
            uow.touch(row["organization_id"])
            uow.emit("evidence.updated", stream_of(row["project_id"]), {
                "evidenceId": str(evidence_id), "projectId": str(row["project_id"]),
                "changed": sorted(k for k in changes), "status": new["status"],
                **({"qualityScore": new["quality_score"]} if "qualityScore" in changes else {}),
                "state": evidence_state(uow.conn, evidence_id),
            })
            return evidence_wire(new)

    def delete(self, principal: Principal, evidence_id: uuid.UUID, *, request_id: str | None = None) -> None:
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            row, role = self._visible(uow.conn, principal, evidence_id)
            workflow.check_delete(subject(principal, role, row))
            EvidenceRepository(uow.conn).delete(evidence_id)
            uow.touch(row["organization_id"])
            uow.emit("evidence.deleted", stream_of(row["project_id"]),
                     {"evidenceId": str(evidence_id), "projectId": str(row["project_id"])})

    def submit(self, principal: Principal, evidence_id: uuid.UUID, *, request_id: str | None = None) -> dict[str, Any]:
        """Send pending (or rejected) evidence to the reviewers."""
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            row, role = self._visible(uow.conn, principal, evidence_id)
            workflow.check_submit(subject(principal, role, row))
            new = EvidenceRepository(uow.conn).update(
                evidence_id, {"status": EvidenceStatus.IN_REVIEW.value, "updated_at": utcnow()},
                expected_version=row["version"])
            assert new is not None
            uow.touch(row["organization_id"])
            uow.emit("evidence.submitted", stream_of(row["project_id"]), {
                "evidenceId": str(evidence_id), "projectId": str(row["project_id"]),
                "submittedBy": str(principal.user_id), "state": evidence_state(uow.conn, evidence_id)})
            return evidence_wire(new)

    def review(self, principal: Principal, evidence_id: uuid.UUID, body: ReviewCreate, *,
               request_id: str | None = None) -> dict[str, Any]:
        """Approve or reject evidence that is in review, keeping the decision as a record."""
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            row, role = self._visible(uow.conn, principal, evidence_id)
            workflow.check_review(subject(principal, role, row))
            now = utcnow()
            review_id = uuid.uuid4()
            review = ReviewRepository(uow.conn).create({
                "id": review_id, "evidence_id": evidence_id, "project_id": row["project_id"],
                "reviewer_id": principal.user_id, "decision": body.decision.value,
                "comment": body.comment, "created_at": now,
            })
            new = EvidenceRepository(uow.conn).update(
                evidence_id, {"status": body.decision.value, "updated_at": now},
                expected_version=row["version"])
            assert new is not None
            uow.touch(row["organization_id"])
            data = {"evidenceId": str(evidence_id), "projectId": str(row["project_id"]),
                    "reviewId": str(review_id), "reviewerId": str(principal.user_id),
                    "decision": body.decision.value, "controlId": row["control_id"],
                    "state": evidence_state(uow.conn, evidence_id)}
            uow.emit("evidence.reviewed", stream_of(row["project_id"]), data)
            uow.emit(f"evidence.{body.decision.value}", stream_of(row["project_id"]), data)
            return {"evidence": evidence_wire(new), "review": record(review, REVIEW_FIELDS)}

    def review_queue(self, principal: Principal, *, oldest_first: bool, cursor: str | None,
                     limit: int) -> tuple[list[dict[str, Any]], str | None, int]:
        """Evidence waiting for the caller's decision across their projects: a page, the
        next cursor and the total. Forbidden to anyone who may review nowhere."""
        roles = workflow.reviewer_roles()
        with self.db.read() as conn:
            if not self._reviews_somewhere(conn, principal, roles):
                raise forbidden("evidence.review")
            repo = EvidenceRepository(conn)
            status = EvidenceStatus.IN_REVIEW.value
            page = repo.review_queue(principal, roles, status, oldest_first=oldest_first,
                                     cursor=cursor, limit=limit)
            total = repo.count_in_queue(principal, roles, status)
        items = []
        for row in page.items:
            role = principal.project_role(row["member_role"])
            # The query asked for what may_review answers row by row; asking it too keeps
            # the one place of the rule the judge of every item shown.
            if workflow.may_review(subject(principal, role, row)):
                items.append({**evidence_wire(row), "projectName": row["project_name"], "myRole": role})
        return items, page.next_cursor, total

    def reviews_somewhere(self, principal: Principal) -> bool:
        """Whether the caller decides on evidence: their own role allows it (a manager or
        auditor not yet in any project has an empty queue), or a project role does."""
        with self.db.read() as conn:
            return self._reviews_somewhere(conn, principal, workflow.reviewer_roles())

    @staticmethod
    def _reviews_somewhere(conn: Connection, principal: Principal, roles: frozenset[str]) -> bool:
        if allowed(principal.role, "evidence.review"):
            return True
        return not principal.org_wide and bool(ProjectRepository(conn).member_roles(principal.user_id) & roles)

    # -- changes other services make inside their own transaction, having checked the caller --
    def record_quality_score(self, uow: UnitOfWork, evidence_id: uuid.UUID, score: float) -> None:
        """Set the computed quality score; the evidence keeps its version."""
        EvidenceRepository(uow.conn).set_computed_quality(evidence_id, score)

    def override_quality_score(self, uow: UnitOfWork, evidence_id: uuid.UUID, score: float) -> None:
        """Set a reviewer's quality score in place of the computed one: a new version."""
        EvidenceRepository(uow.conn).update(evidence_id, {"quality_score": score, "updated_at": utcnow()})

    def link_control(self, uow: UnitOfWork, evidence: RowMapping, ref: str) -> dict[str, Any] | None:
        """Link evidence to a control: the first becomes its primary control (a new version),
        later ones further links to its project's framework. Returns the evidence's scoring
        state, which the caller's event carries so the compliance score counts the link."""
        if evidence["control_id"] is None:
            EvidenceRepository(uow.conn).update(evidence["id"], {"control_id": ref, "updated_at": utcnow()})
            return evidence_state(uow.conn, evidence["id"])
        return link_one_control(uow.conn, evidence["id"], ref)

    def reviews(self, principal: Principal, evidence_id: uuid.UUID, *, cursor: str | None,
                limit: int) -> tuple[list[dict[str, Any]], str | None]:
        with self.db.read() as conn:
            self._visible(conn, principal, evidence_id)
            page = ReviewRepository(conn).find_all(equal={"evidence_id": evidence_id},
                                                   cursor=cursor, limit=limit)
            return [record(r, REVIEW_FIELDS) for r in page.items], page.next_cursor
