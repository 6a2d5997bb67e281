"""Use cases of compliance: evidence-to-control links, applicability, framework version moves,
the score (now and as of a past date), per-control status, renewals and coverage queries."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy.engine import Connection, RowMapping

from studio.db.engine import Database, utcnow
from studio.domains.compliance.projection import read_score
from studio.domains.compliance.repository import ComplianceRepository, ScoreRepository
from studio.domains.compliance.scoring import (
    APPLICABILITY_EVENT,
    LINK_EVENT,
    VERSION_EVENT,
    Coverage,
    ScoreFold,
    control_status,
    score,
)
from studio.domains.evidence.repository import EvidenceRepository
from studio.domains.frameworks.repository import FrameworkRepository, version_index
from studio.domains.projects.service import stream_of, visible_project
from studio.errors import AppError, forbidden, not_found
from studio.permissions import allowed
from studio.principal import Principal


def today() -> dt.date:
    return utcnow().date()


def evidence_refs(conn: Connection, evidence_id: uuid.UUID, primary: str | None,
                  version_id: uuid.UUID | None) -> list[str]:
    """The control refs an evidence item is linked to: its primary control and further links."""
    refs = ComplianceRepository(conn).linked_refs(evidence_id)
    if primary and version_id is not None:
        ref = version_index(conn, version_id).resolve(primary)
        if ref is not None:
            refs.add(ref)
    return sorted(refs)


def evidence_state(conn: Connection, evidence_id: uuid.UUID) -> dict[str, Any] | None:
    """What the score needs to know about an evidence item, carried in its events."""
    repo = ComplianceRepository(conn)
    row = repo.scored_evidence(evidence_id)
    if row is None:
        return None
    primary = row["control_id"]
    version_id = repo.framework_version(row["project_id"]) if primary else None
    expires = row["expires_at"]
    return {"status": row["status"], "expiresAt": expires.isoformat() if expires else None,
            "controls": evidence_refs(conn, evidence_id, primary, version_id)}


def link_one_control(conn: Connection, evidence_id: uuid.UUID, ref: str) -> dict[str, Any] | None:
    """Link evidence to one more control of its project's framework version (an accepted
    suggestion) unless it is already linked; returns the evidence's scoring state, which the
    caller's event must carry so the score counts the link. None: not a control there."""
    repo = ComplianceRepository(conn)
    row = repo.scored_evidence(evidence_id)
    if row is None:
        return None
    version_id = repo.framework_version(row["project_id"])
    if version_id is None:
        return None
    spellings = FrameworkRepository(conn).refs_of(version_id)
    found = spellings.get(ref) or spellings.get(ref.lower())
    if found is None:
        return None
    primary = row["control_id"] and (spellings.get(row["control_id"]) or spellings.get(row["control_id"].lower()))
    if found != primary and found not in repo.linked_refs(evidence_id):
        repo.add_links(evidence_id, row["project_id"], [found], utcnow())
    return evidence_state(conn, evidence_id)


def full_recompute(conn: Connection, project_id: uuid.UUID, on: dt.date) -> dict[str, Any]:
    """The score from the source tables (evidence, links, applicability), not from the projection."""
    repo = ComplianceRepository(conn)
    version_id = repo.framework_version(project_id)
    if version_id is None:
        return {"score": 0.0, "coverage": {}, "notApplicable": set(), "weights": {}}
    index = version_index(conn, version_id)
    totals: dict[str, Coverage] = {}

    def add(ref: str | None, row: RowMapping) -> None:
        if ref is None:
            return
        cov = totals.setdefault(ref, Coverage())
        cov.approved += int(row["approved"])
        cov.open_ended += int(row["open_ended"] or 0)
        latest = row["max_expiry"]
        if latest is not None and (cov.max_expiry is None or latest > cov.max_expiry):
            cov.max_expiry = latest

    # Aggregates instead of every evidence row: by primary control, then by further link,
    # where a link to the evidence's own primary control is skipped so it counts once.
    for row in repo.approved_by_primary(project_id):
        add(index.resolve(row["control_id"]), row)
    for row in repo.approved_by_link(project_id):
        if index.resolve(row["control_id"]) != row["control_ref"]:
            add(row["control_ref"], row)
    coverage = {ref: cov for ref, cov in totals.items() if cov.approved > 0}
    na = set(repo.not_applicable(project_id))
    return {"score": score(index.weights, coverage, na, on), "coverage": coverage, "notApplicable": na,
            "weights": index.weights}


class ComplianceService:
    def __init__(self, db: Database):
        self.db = db

    # -- writes -----------------------------------------------------------------------------
    def link_controls(self, principal: Principal, evidence_id: uuid.UUID, refs: list[str], *,
                      request_id: str | None = None) -> dict[str, Any]:
        """Replace the further controls an evidence item is linked to (the primary stays as it is)."""
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            row, project, role = self._visible_evidence(uow.conn, principal, evidence_id)
            if not (allowed(role, "evidence.update") or
                    (allowed(role, "evidence.update_own") and row["created_by"] == principal.user_id)):
                raise forbidden("evidence.update")
            version_id = project["framework_version_id"]
            if version_id is None:
                raise AppError("conflict", "the project has no framework version yet; an admin assigns one")
            spellings = FrameworkRepository(uow.conn).refs_of(version_id)
            resolved, bad = [], []
            for i, ref in enumerate(refs):
                found = spellings.get(ref) or spellings.get(ref.lower())
                if found is None:
                    bad.append({"field": f"controlRefs.{i}", "message": f"{ref!r} is not a control of the project's framework"})
                else:
                    resolved.append(found)
            if bad:
                raise AppError("not_found", "unknown control(s)", details=bad)
            repo = ComplianceRepository(uow.conn)
            repo.remove_links(evidence_id)
            unique = sorted(set(resolved))
            repo.add_links(evidence_id, row["project_id"], unique, utcnow())
            state = evidence_state(uow.conn, evidence_id)
            uow.touch(row["organization_id"])
            uow.emit(LINK_EVENT, stream_of(row["project_id"]), {
                "evidenceId": str(evidence_id), "projectId": str(row["project_id"]), "controlRefs": unique,
                "state": state})
            return {"evidenceId": str(evidence_id), "primary": row["control_id"], "controlRefs": unique,
                    "controls": state["controls"] if state else []}

    def linked_controls(self, principal: Principal, evidence_id: uuid.UUID) -> dict[str, Any]:
        with self.db.read() as conn:
            row, project, _ = self._visible_evidence(conn, principal, evidence_id)
            further = sorted(ComplianceRepository(conn).linked_refs(evidence_id))
            return {"evidenceId": str(evidence_id), "primary": row["control_id"], "controlRefs": further,
                    "controls": evidence_refs(conn, evidence_id, row["control_id"], project["framework_version_id"])}

    def set_applicability(self, principal: Principal, project_id: uuid.UUID, ref: str, applicable: bool,
                          reason: str, *, request_id: str | None = None) -> dict[str, Any]:
        """Mark a control of the project applicable again, or not applicable with a reason."""
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            project, _ = visible_project(uow.conn, principal, project_id, "project.controls.manage")
            if project["framework_version_id"] is None:
                raise AppError("conflict", "the project has no framework version yet; an admin assigns one")
            control = FrameworkRepository(uow.conn).control_by_ref(project["framework_version_id"], ref)
            if control is None or control["kind"] != "control":
                raise not_found("control")
            if not applicable and not reason.strip():
                raise AppError("validation_error", "a reason is required",
                               details=[{"field": "reason", "message": "say why the control does not apply"}])
            ref = control["ref"]
            ComplianceRepository(uow.conn).set_applicability(project_id, ref, applicable=applicable, reason=reason,
                                                             by=principal.user_id, at=utcnow())
            uow.touch(project["organization_id"])
            uow.emit(APPLICABILITY_EVENT, stream_of(project_id), {
                "projectId": str(project_id), "controlRef": ref, "applicable": applicable,
                "reason": reason if not applicable else ""})
            return {"projectId": str(project_id), "controlRef": ref, "applicable": applicable,
                    "reason": reason if not applicable else ""}

    def move_version(self, principal: Principal, project_id: uuid.UUID, version_id: uuid.UUID, *,
                     request_id: str | None = None) -> dict[str, Any]:
        """Assess the project against another framework version (admins only)."""
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            project, _ = visible_project(uow.conn, principal, project_id, "project.framework.move")
            # Only a version of a framework the project's organization sees; another
            # organization's is as unknown as a made-up id.
            frameworks = FrameworkRepository(uow.conn, project["organization_id"])
            version = frameworks.version(version_id)
            if version is None:
                raise AppError("not_found", "framework version not found",
                               details=[{"field": "frameworkVersionId", "message": "no such framework version"}])
            repo = ComplianceRepository(uow.conn)
            repo.move_to_version(project_id, version_id, version["name"][:255], utcnow())
            uow.touch(project["organization_id"])
            previous = project["framework_version_id"]
            uow.emit(VERSION_EVENT, stream_of(project_id), {
                "projectId": str(project_id), "frameworkVersionId": str(version_id),
                "previousVersionId": str(previous) if previous else None, "framework": version["name"]})
            # A primary control written as a label ("AC-3") may name a control only one of the
            # versions has; those evidence items get an event with their new scoring state, so
            # the projection (a fold of events) and a recompute from the tables agree.
            before = frameworks.refs_of(previous) if previous else {}
            after = frameworks.refs_of(version_id)
            for item in repo.primary_controls(project_id):
                primary = item["control_id"]
                old_ref = before.get(primary) or before.get(primary.lower())
                new_ref = after.get(primary) or after.get(primary.lower())
                if old_ref != new_ref:
                    uow.emit("evidence.controls_rescoped", stream_of(project_id), {
                        "evidenceId": str(item["id"]), "projectId": str(project_id),
                        "state": evidence_state(uow.conn, item["id"])})
            return {"projectId": str(project_id), "frameworkVersionId": str(version_id),
                    "previousVersionId": str(previous) if previous else None, "framework": version["name"]}

    # -- reads ------------------------------------------------------------------------------
    def score(self, principal: Principal, project_id: uuid.UUID, on: dt.date | None = None) -> dict[str, Any]:
        """The project's score as of today (or a date), with counts per status."""
        with self.db.read() as conn:
            visible_project(conn, principal, project_id, "project.read")
            if on is not None and on < today():
                return self._history(conn, project_id, on)
            result = read_score(conn, project_id, on or today())
            return {"projectId": str(project_id), "asOf": (on or today()).isoformat(), **result}

    def _history(self, conn: Connection, project_id: uuid.UUID, on: dt.date) -> dict[str, Any]:
        fold = ScoreFold()
        end = dt.datetime.combine(on + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
        from studio.events.store import EventStore

        store = EventStore()
        after = 0
        while True:
            batch = store.read(conn, after=after, limit=2000, stream=stream_of(project_id), until=end)
            for ev in batch:
                fold.apply(ev.type, ev.data)
            if len(batch) < 2000:
                break
            after = batch[-1].position
        weights: dict[str, float] = {}
        if fold.version_id:
            weights = FrameworkRepository(conn).weights(uuid.UUID(fold.version_id))
        value = score(weights, fold.coverage(), set(fold.not_applicable), on)
        return {"projectId": str(project_id), "asOf": on.isoformat(), "score": value,
                "frameworkVersionId": fold.version_id, "source": "events"}

    def control_statuses(self, principal: Principal, project_id: uuid.UUID) -> list[dict[str, Any]]:
        """Every control of the project's framework version with its status and the reason for it."""
        with self.db.read() as conn:
            project, _ = visible_project(conn, principal, project_id, "project.read")
            version_id = project["framework_version_id"]
            if version_id is None:
                return []
            on = today()
            coverage = {r["control_ref"]: Coverage(r["approved"], r["open_ended"], r["max_expiry"])
                        for r in ScoreRepository(conn).coverage(project_id)}
            na = ComplianceRepository(conn).not_applicable(project_id)
            mapped = self._mapped_sources(conn, project, on)
            out = []
            for control in FrameworkRepository(conn).catalog_controls(version_id):
                cid, ref = control["id"], control["ref"]
                cov = coverage.get(ref)
                status = control_status(cov, on, applicable=ref not in na, mapped=cid in mapped)
                why = {
                    "covered": "approved evidence that has not expired",
                    "partial": "not covered here; a mapped control is covered in another project",
                    "expired": "all approved evidence has expired; renew it",
                    "missing": "no approved evidence",
                    "not_applicable": na.get(ref, ""),
                }[status]
                out.append({"controlId": str(cid), "ref": ref, "label": control["label"], "title": control["title"],
                            "weight": control["weight"], "status": status, "reason": why,
                            "approvedEvidence": cov.approved if cov else 0,
                            "coveredUntil": None if cov is None or cov.open_ended else
                            (cov.max_expiry.isoformat() if cov.max_expiry else None),
                            "mappedFrom": mapped.get(cid, []) if status == "partial" else []})
            return out

    def renewals(self, principal: Principal, project_id: uuid.UUID, within_days: int) -> list[dict[str, Any]]:
        """Approved evidence that has expired or expires within `within_days`, soonest first."""
        with self.db.read() as conn:
            visible_project(conn, principal, project_id, "evidence.read")
            horizon = today() + dt.timedelta(days=within_days)
            due = ComplianceRepository(conn).due_for_renewal(project_id, horizon, limit=1000)
            return [{"evidenceId": str(r["id"]), "title": r["title"], "controlId": r["control_id"],
                     "expiresAt": r["expires_at"].isoformat(), "expired": r["expires_at"] < today()}
                    for r in due]

    def evidence_coverage(self, principal: Principal, evidence_id: uuid.UUID, depth: int = 2) -> dict[str, Any]:
        """Controls an evidence item covers directly and through mappings, with the path explaining each."""
        with self.db.read() as conn:
            row, project, _ = self._visible_evidence(conn, principal, evidence_id)
            version_id = project["framework_version_id"]
            refs = evidence_refs(conn, evidence_id, row["control_id"], version_id)
            # Mappings (and the controls they reach) the project's organization sees.
            repo = FrameworkRepository(conn, project["organization_id"])
            ids = version_index(conn, version_id).ids if version_id else {}
            direct = {r: ids[r] for r in refs if r in ids}
            paths: dict[uuid.UUID, list[dict[str, Any]]] = {cid: [] for cid in direct.values()}
            level = list(direct.values())
            # Breadth-first, one query per hop: the path to each control is the first (shortest) found.
            for _ in range(depth):
                following: list[uuid.UUID] = []
                in_level = set(level)
                for m in repo.mappings_touching(level):
                    for here, other, direction in ((m["source_id"], m["target_id"], "out"),
                                                   (m["target_id"], m["source_id"], "in")):
                        if here in in_level and other not in paths:
                            paths[other] = [*paths[here], {
                                "from": str(here), "to": str(other), "mappingId": str(m["id"]),
                                "relation": m["relation"], "strength": m["strength"], "direction": direction}]
                            following.append(other)
                level = following
                if not level:
                    break
            info = repo.controls_by_ids(paths)
            items = [{"controlId": str(cid), "ref": info[cid]["ref"], "label": info[cid]["label"],
                      "title": info[cid]["title"], "framework": info[cid]["framework"],
                      "versionId": str(info[cid]["version_id"]), "direct": not path, "path": path}
                     for cid, path in paths.items()]
            items.sort(key=lambda x: (len(x["path"]), x["framework"], x["ref"]))
            return {"evidenceId": str(evidence_id), "status": row["status"], "counts": row["status"] == "approved",
                    "controls": items}

    def mapped_coverage(self, principal: Principal, project_id: uuid.UUID,
                        source_project_id: uuid.UUID | None = None,
                        control_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
        """For each control of this project, the controls of other projects (other frameworks) whose
        approved, unexpired evidence covers it through a mapping: N sources per target."""
        with self.db.read() as conn:
            project, _ = visible_project(conn, principal, project_id, "project.read")
            if source_project_id is not None:
                visible_project(conn, principal, source_project_id, "project.read")
            if project["framework_version_id"] is None:
                return []
            mapped = self._mapped_sources(conn, project, today(), only_project=source_project_id,
                                          only_control=control_id)
            info = FrameworkRepository(conn, project["organization_id"]).controls_by_ids(mapped)
            return [{"controlId": str(cid), "ref": info[cid]["ref"], "label": info[cid]["label"],
                     "title": info[cid]["title"], "sources": sources}
                    for cid, sources in sorted(mapped.items(), key=lambda kv: info[kv[0]]["sort"])]

    def _mapped_sources(self, conn: Connection, project: RowMapping, on: dt.date,
                        only_project: uuid.UUID | None = None,
                        only_control: uuid.UUID | None = None) -> dict[uuid.UUID, list[dict[str, Any]]]:
        """Controls of `project` mapped to a control covered in another project of the organization."""
        repo = ComplianceRepository(conn)
        covered: dict[uuid.UUID, list[RowMapping]] = {}
        for r in repo.covered_elsewhere(project["organization_id"], project["id"], on, only_project=only_project,
                                        mapped_to=only_control):
            covered.setdefault(r["id"], []).append(r)
        if not covered:
            return {}
        out: dict[uuid.UUID, list[dict[str, Any]]] = {}
        for direction, m in repo.mappings_into(project["framework_version_id"], list(covered),
                                               project["organization_id"], only_control=only_control):
            for src in covered[m["theirs"]]:
                out.setdefault(m["mine"], []).append({
                    "projectId": str(src["project_id"]), "project": src["name"], "controlId": str(src["id"]),
                    "ref": src["ref"], "label": src["label"], "relation": m["relation"], "strength": m["strength"],
                    "mappingId": str(m["mapping_id"]), "direction": direction})
        return out

    def _visible_evidence(self, conn: Connection, principal: Principal,
                          evidence_id: uuid.UUID) -> tuple[RowMapping, RowMapping, str]:
        """The evidence, its project and the caller's role there; 404 unless the caller may read it."""
        row = EvidenceRepository(conn).get(evidence_id)
        if row is None:
            raise not_found("evidence")
        try:
            project, role = visible_project(conn, principal, row["project_id"], "evidence.read")
        except AppError as exc:
            raise not_found("evidence") from exc
        return row, project, role
