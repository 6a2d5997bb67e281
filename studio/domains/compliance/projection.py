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
from sqlalchemy.engine import Connection

from studio.domains.compliance.repository import ScoreRepository
from studio.domains.compliance.scoring import (
    APPLICABILITY_EVENT,
    EVIDENCE_PREFIX,
    SUBSCRIPTIONS,
    VERSION_EVENT,
    evidence_state_from,
)
from studio.domains.frameworks.repository import version_index

if TYPE_CHECKING:
    from studio.db.engine import UnitOfWork
    from studio.events.envelope import StoredEvent


def score_from_projection(conn: Connection, project_id: uuid.UUID, on: dt.date) -> dict[str, Any]:
    """The score and status counts as of `on`, from the projection tables.

    Reads only the project's per-control rows (at most one per control, never evidence rows)
    and its not-applicable refs; the version's weights come from a per-process cache.
    """
    repo = ScoreRepository(conn)
    version_id = repo.framework_version(project_id)
    counts = {"covered": 0, "expired": 0, "missing": 0, "not_applicable": 0}
    if version_id is None:
        return {"score": 0.0, "frameworkVersionId": None, "applicableWeight": 0.0, "coveredWeight": 0.0,
                "counts": counts, "validUntil": None}
    weights = version_index(conn, version_id).weights
    state = {r["control_ref"]: r for r in repo.coverage(project_id)}
    na = repo.not_applicable_refs(project_id)
    total = covered_w = 0.0
    valid_until: dt.date | None = None
    for ref, weight in weights.items():
        if ref in na:
            counts["not_applicable"] += 1
            continue
        total += weight
        row = state.get(ref)
        if row is None or row["approved"] == 0:
            counts["missing"] += 1
            continue
        max_expiry: dt.date | None = row["max_expiry"]
        if row["open_ended"] > 0:
            counts["covered"] += 1
            covered_w += weight
        elif max_expiry is not None and max_expiry >= on:
            counts["covered"] += 1
            covered_w += weight
            if valid_until is None or max_expiry < valid_until:
                valid_until = max_expiry
        else:
            counts["expired"] += 1
    value = round(100.0 * covered_w / total, 2) if total else 0.0
    return {"score": value, "frameworkVersionId": str(version_id), "applicableWeight": total,
            "coveredWeight": covered_w, "counts": counts,
            "validUntil": valid_until.isoformat() if valid_until else None}


def read_score(conn: Connection, project_id: uuid.UUID, on: dt.date) -> dict[str, Any]:
    """The score as of `on` (today or later): the stored one while no covering evidence has
    expired since it was computed (one primary-key read), else computed from the projection."""
    row = ScoreRepository(conn).stored_score(project_id)
    if (row is not None and row["summary"] is not None and row["scored_on"] is not None
            and on >= row["scored_on"] and (row["valid_until"] is None or on <= row["valid_until"])):
        summary: dict[str, Any] = orjson.loads(row["summary"])
        return summary
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
        repo = ScoreRepository(uow.conn)
        last = repo.position(project_id)
        if last is not None and event.position <= last:
            return  # delivered again: this project's state already includes it
        repo.advance(project_id, event.position, first=last is None)
        if event.type == "project.deleted":
            repo.forget(project_id)
            return
        if event.type == "project.created":
            if data.get("frameworkVersionId"):
                repo.set_version(project_id, _version_id(data["frameworkVersionId"]))
        elif event.type == VERSION_EVENT:
            repo.set_version(project_id, _version_id(data.get("frameworkVersionId")))
        elif event.type == APPLICABILITY_EVENT:
            repo.set_applicability(project_id, data["controlRef"], applicable=bool(data.get("applicable")),
                                   reason=data.get("reason") or "")
        elif event.type.startswith(EVIDENCE_PREFIX) and "evidenceId" in data:
            evidence_id = uuid.UUID(str(data["evidenceId"]))
            state = None if event.type == "evidence.deleted" else evidence_state_from(data)
            if state is None and event.type != "evidence.deleted":
                return  # an evidence event without scoring state changes nothing scored
            old = repo.evidence_refs(evidence_id)
            new: set[str] = set(state.refs) if state is not None else set()
            repo.replace_evidence(evidence_id, project_id, sorted(new),
                                  approved=state is not None and state.approved,
                                  expires=state.expires if state is not None else None)
            repo.aggregate(project_id, old | new)
        else:
            return
        on = event.timestamp.astimezone(dt.UTC).date()
        result = score_from_projection(uow.conn, project_id, on)
        repo.save_score(project_id, result["score"], on=on, summary=orjson.dumps(result).decode(),
                        valid_until=dt.date.fromisoformat(result["validUntil"]) if result["validUntil"] else None)

    def reset(self, conn: Connection) -> None:
        ScoreRepository(conn).reset()


def _version_id(value: Any) -> uuid.UUID | None:
    return uuid.UUID(str(value)) if value else None
