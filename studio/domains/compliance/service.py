"""Use cases of compliance: evidence-to-control links, applicability, framework version moves,
the score (now and as of a past date), per-control status, renewals and coverage queries."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from studio.db.engine import Database, utcnow
from studio.domains.compliance.models import (
    compliance_controls,
    evidence_controls,
    project_controls,
)
from studio.domains.compliance.projection import read_score
from studio.domains.compliance.scoring import (
    APPLICABILITY_EVENT,
    LINK_EVENT,
    VERSION_EVENT,
    Coverage,
    ScoreFold,
    control_status,
    score,
)
from studio.domains.evidence.models import evidence as evidence_t
from studio.domains.frameworks.models import control_mappings, controls
from studio.domains.frameworks.repository import FrameworkRepository, version_index
from studio.domains.projects.models import projects
from studio.domains.projects.service import stream_of, visible_project
from studio.errors import AppError, forbidden, not_found
from studio.permissions import allowed
from studio.principal import Principal


def today() -> dt.date:
    return utcnow().date()


def evidence_refs(conn: Connection, evidence_id: uuid.UUID, project_id: uuid.UUID, primary: str | None,
                  version_id: Any = False) -> list[str]:
    """The control refs an evidence item is linked to: its primary control and further links."""
    refs = set(conn.execute(select(evidence_controls.c.control_ref)
                            .where(evidence_controls.c.evidence_id == evidence_id)).scalars())
    if primary:
        if version_id is False:
            version_id = conn.execute(select(projects.c.framework_version_id)
                                      .where(projects.c.id == project_id)).scalar()
        if version_id is not None:
            ref = version_index(conn, version_id).resolve(primary)
            if ref is not None:
                refs.add(ref)
    return sorted(refs)


def evidence_state(conn: Connection, evidence_id: uuid.UUID) -> dict[str, Any] | None:
    """What the score needs to know about an evidence item, carried in its events."""
    row = conn.execute(select(evidence_t.c.project_id, evidence_t.c.status, evidence_t.c.expires_at,
                              evidence_t.c.control_id).where(evidence_t.c.id == evidence_id)).first()
    if row is None:
        return None
    return {"status": row.status, "expiresAt": row.expires_at.isoformat() if row.expires_at else None,
            "controls": evidence_refs(conn, evidence_id, row.project_id, row.control_id)}


def link_one_control(conn: Connection, evidence_id: uuid.UUID, ref: str) -> dict[str, Any] | None:
    """Link evidence to one more control of its project's framework version (an accepted
    suggestion) unless it is already linked; returns the evidence's scoring state, which the
    caller's event must carry so the score counts the link. None: not a control there."""
    row = conn.execute(select(evidence_t.c.project_id, evidence_t.c.control_id)
                       .where(evidence_t.c.id == evidence_id)).first()
    if row is None:
        return None
    version_id = conn.execute(select(projects.c.framework_version_id)
                              .where(projects.c.id == row.project_id)).scalar()
    if version_id is None:
        return None
    spellings = FrameworkRepository(conn).refs_of(version_id)
    found = spellings.get(ref) or spellings.get(ref.lower())
    if found is None:
        return None
    linked = set(conn.execute(select(evidence_controls.c.control_ref)
                              .where(evidence_controls.c.evidence_id == evidence_id)).scalars())
    primary = row.control_id and (spellings.get(row.control_id) or spellings.get(row.control_id.lower()))
    if found != primary and found not in linked:
        conn.execute(insert(evidence_controls).values(evidence_id=evidence_id, control_ref=found,
                                                      project_id=row.project_id, created_at=utcnow()))
    return evidence_state(conn, evidence_id)


def full_recompute(conn: Connection, project_id: uuid.UUID, on: dt.date) -> dict[str, Any]:
    """The score from the source tables (evidence, links, applicability), not from the projection."""
    version_id = conn.execute(select(projects.c.framework_version_id).where(projects.c.id == project_id)).scalar()
    if version_id is None:
        return {"score": 0.0, "coverage": {}, "notApplicable": set(), "weights": {}}
    index = version_index(conn, version_id)
    weights = index.weights
    resolve = index.resolve

    # Three aggregates instead of reading every evidence row: by primary control, by further
    # link, and the overlap (a link to the evidence's own primary control) to subtract.
    approved = and_(evidence_t.c.project_id == project_id, evidence_t.c.status == "approved")
    open_ended = func.sum(case((evidence_t.c.expires_at.is_(None), 1), else_=0))
    totals: dict[str, list[Any]] = {}

    def add(ref: str | None, n: int, n_open: int, latest: Any, sign: int = 1) -> None:
        if ref is None:
            return
        entry = totals.setdefault(ref, [0, 0, None])
        entry[0] += sign * int(n)
        entry[1] += sign * int(n_open or 0)
        if sign > 0 and latest is not None and (entry[2] is None or latest > entry[2]):
            entry[2] = latest

    by_primary = (select(evidence_t.c.control_id, func.count(), open_ended, func.max(evidence_t.c.expires_at))
                  .where(approved, evidence_t.c.control_id.is_not(None)).group_by(evidence_t.c.control_id))
    for spelling, n, n_open, latest in conn.execute(by_primary):
        add(resolve(spelling), n, n_open, latest)
    ec = evidence_controls
    by_link = (select(ec.c.control_ref, evidence_t.c.control_id, func.count(), open_ended,
                      func.max(evidence_t.c.expires_at))
               .select_from(ec).join(evidence_t, evidence_t.c.id == ec.c.evidence_id)
               .where(approved, ec.c.project_id == project_id)
               .group_by(ec.c.control_ref, evidence_t.c.control_id))
    for ref, spelling, n, n_open, latest in conn.execute(by_link):
        if resolve(spelling) != ref:
            add(ref, n, n_open, latest)
    coverage = {ref: Coverage(n, n_open, latest) for ref, (n, n_open, latest) in totals.items() if n > 0}
    na = set(conn.execute(select(project_controls.c.control_ref).where(
        project_controls.c.project_id == project_id, project_controls.c.applicable.is_(False))).scalars())
    return {"score": score(weights, coverage, na, on), "coverage": coverage, "notApplicable": na,
            "weights": weights}


class ComplianceService:
    def __init__(self, db: Database):
        self.db = db

    # -- writes -----------------------------------------------------------------------------
    def link_controls(self, principal: Principal, evidence_id: uuid.UUID, refs: list[str], *,
                      request_id: str | None = None) -> dict[str, Any]:
        """Replace the further controls an evidence item is linked to (the primary stays as it is)."""
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            row = uow.conn.execute(select(evidence_t).where(evidence_t.c.id == evidence_id)).mappings().first()
            if row is None:
                raise not_found("evidence")
            try:
                project, role = visible_project(uow.conn, principal, row["project_id"], "evidence.read")
            except AppError as exc:
                raise not_found("evidence") from exc
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
            uow.conn.execute(delete(evidence_controls).where(evidence_controls.c.evidence_id == evidence_id))
            now = utcnow()
            unique = sorted(set(resolved))
            if unique:
                uow.conn.execute(insert(evidence_controls), [
                    {"evidence_id": evidence_id, "control_ref": r, "project_id": row["project_id"], "created_at": now}
                    for r in unique])
            state = evidence_state(uow.conn, evidence_id)
            uow.touch(row["organization_id"])
            uow.emit(LINK_EVENT, stream_of(row["project_id"]), {
                "evidenceId": str(evidence_id), "projectId": str(row["project_id"]), "controlRefs": unique,
                "state": state})
            return {"evidenceId": str(evidence_id), "primary": row["control_id"], "controlRefs": unique,
                    "controls": state["controls"] if state else []}

    def linked_controls(self, principal: Principal, evidence_id: uuid.UUID) -> dict[str, Any]:
        with self.db.read() as conn:
            row, project = self._visible_evidence(conn, principal, evidence_id)
            further = sorted(conn.execute(select(evidence_controls.c.control_ref)
                                          .where(evidence_controls.c.evidence_id == evidence_id)).scalars())
            return {"evidenceId": str(evidence_id), "primary": row["control_id"], "controlRefs": further,
                    "controls": evidence_refs(conn, evidence_id, row["project_id"], row["control_id"],
                                              project["framework_version_id"])}

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
            uow.conn.execute(delete(project_controls).where(project_controls.c.project_id == project_id,
                                                            project_controls.c.control_ref == ref))
            if not applicable:
                uow.conn.execute(insert(project_controls).values(
                    project_id=project_id, control_ref=ref, applicable=False, reason=reason,
                    updated_by=principal.user_id, updated_at=utcnow()))
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
            version = FrameworkRepository(uow.conn).version(version_id)
            if version is None:
                raise AppError("not_found", "framework version not found",
                               details=[{"field": "frameworkVersionId", "message": "no such framework version"}])
            uow.conn.execute(update(projects).where(projects.c.id == project_id).values(
                framework_version_id=version_id, framework=version["name"][:255], updated_at=utcnow(),
                version=projects.c.version + 1))
            uow.touch(project["organization_id"])
            previous = project["framework_version_id"]
            uow.emit(VERSION_EVENT, stream_of(project_id), {
                "projectId": str(project_id), "frameworkVersionId": str(version_id),
                "previousVersionId": str(previous) if previous else None, "framework": version["name"]})
            # A primary control written as a label ("AC-3") may name a control only one of the
            # versions has; those evidence items get an event with their new scoring state, so
            # the projection (a fold of events) and a recompute from the tables agree.
            repo = FrameworkRepository(uow.conn)
            before = repo.refs_of(previous) if previous else {}
            after = repo.refs_of(version_id)
            query = select(evidence_t.c.id, evidence_t.c.control_id).where(
                evidence_t.c.project_id == project_id, evidence_t.c.control_id.is_not(None))
            for eid, primary in uow.conn.execute(query).all():
                old_ref = before.get(primary) or before.get(primary.lower())
                new_ref = after.get(primary) or after.get(primary.lower())
                if old_ref != new_ref:
                    uow.emit("evidence.controls_rescoped", stream_of(project_id), {
                        "evidenceId": str(eid), "projectId": str(project_id),
                        "state": evidence_state(uow.conn, eid)})
            return {"projectId": str(project_id), "frameworkVersionId": str(version_id),
                    "previousVersionId": str(previous) if previous else None, "framework": version["name"]}

    # -- reads ------------------------------------------------------------------------------
    def score(self, principal: Principal, project_id: uuid.UUID, on: dt.date | None = None) -> dict[str, Any]:
        """The project's score as of today (or a date), with counts per status."""
        with self.db.read() as conn:
            project, _ = visible_project(conn, principal, project_id, "project.read")
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
            coverage = {r.control_ref: Coverage(r.approved, r.open_ended, r.max_expiry) for r in conn.execute(
                select(compliance_controls).where(compliance_controls.c.project_id == project_id))}
            na = {r.control_ref: r.reason for r in conn.execute(
                select(project_controls).where(project_controls.c.project_id == project_id,
                                               project_controls.c.applicable.is_(False)))}
            mapped = self._mapped_sources(conn, project, on)
            rows = conn.execute(select(controls.c.id, controls.c.ref, controls.c.label, controls.c.title,
                                       controls.c.weight).where(controls.c.version_id == version_id,
                                                                controls.c.kind == "control")
                                .order_by(controls.c.sort))
            out = []
            for cid, ref, label, title, weight in rows:
                cov = coverage.get(ref)
                status = control_status(cov, on, applicable=ref not in na, mapped=cid in mapped)
                why = {
                    "covered": "approved evidence that has not expired",
                    "partial": "not covered here; a mapped control is covered in another project",
                    "expired": "all approved evidence has expired; renew it",
                    "missing": "no approved evidence",
                    "not_applicable": na.get(ref, ""),
                }[status]
                out.append({"controlId": str(cid), "ref": ref, "label": label, "title": title, "weight": weight,
                            "status": status, "reason": why,
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
            query = (select(evidence_t.c.id, evidence_t.c.title, evidence_t.c.control_id, evidence_t.c.expires_at)
                     .where(evidence_t.c.project_id == project_id, evidence_t.c.status == "approved",
                            evidence_t.c.expires_at.is_not(None), evidence_t.c.expires_at <= horizon)
                     .order_by(evidence_t.c.expires_at, evidence_t.c.id).limit(1000))
            return [{"evidenceId": str(r.id), "title": r.title, "controlId": r.control_id,
                     "expiresAt": r.expires_at.isoformat(), "expired": r.expires_at < today()}
                    for r in conn.execute(query)]

    def evidence_coverage(self, principal: Principal, evidence_id: uuid.UUID, depth: int = 2) -> dict[str, Any]:
        """Controls an evidence item covers directly and through mappings, with the path explaining each."""
        with self.db.read() as conn:
            row, project = self._visible_evidence(conn, principal, evidence_id)
            version_id = project["framework_version_id"]
            refs = evidence_refs(conn, evidence_id, row["project_id"], row["control_id"], version_id)
            repo = FrameworkRepository(conn)
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
            info = FrameworkRepository(conn).controls_by_ids(mapped)
            return [{"controlId": str(cid), "ref": info[cid]["ref"], "label": info[cid]["label"],
                     "title": info[cid]["title"], "sources": sources}
                    for cid, sources in sorted(mapped.items(), key=lambda kv: info[kv[0]]["sort"])]

    def _mapped_sources(self, conn: Connection, project: Any, on: dt.date,
                        only_project: uuid.UUID | None = None,
                        only_control: uuid.UUID | None = None) -> dict[uuid.UUID, list[dict[str, Any]]]:
        """Controls of `project` mapped to a control covered in another project of the organization."""
        cc = compliance_controls
        other = projects.alias("other")
        covered_query = (
            select(controls.c.id, other.c.id.label("project_id"), other.c.name, controls.c.ref, controls.c.label)
            .select_from(cc)
            .join(other, other.c.id == cc.c.project_id)
            .join(controls, and_(controls.c.version_id == other.c.framework_version_id,
                                 controls.c.ref == cc.c.control_ref))
            .where(other.c.organization_id == project["organization_id"], other.c.id != project["id"],
                   cc.c.approved > 0, or_(cc.c.open_ended > 0, cc.c.max_expiry >= on))
        )
        if only_project is not None:
            covered_query = covered_query.where(other.c.id == only_project)
        if only_control is not None:
            # One target control: only the controls mapped to it can cover it.
            ends = select(control_mappings.c.target_id).where(control_mappings.c.source_id == only_control).union(
                select(control_mappings.c.source_id).where(control_mappings.c.target_id == only_control))
            covered_query = covered_query.where(controls.c.id.in_(ends))
        covered: dict[uuid.UUID, list[Any]] = {}
        for r in conn.execute(covered_query):
            covered.setdefault(r.id, []).append(r)
        if not covered:
            return {}
        out: dict[uuid.UUID, list[dict[str, Any]]] = {}
        ids = list(covered)
        mine = controls.alias("mine")
        for direction, mine_col, their_col in (("out", control_mappings.c.source_id, control_mappings.c.target_id),
                                               ("in", control_mappings.c.target_id, control_mappings.c.source_id)):
            for start in range(0, len(ids), 500):
                query = (
                    select(mine_col.label("mine"), their_col.label("theirs"), control_mappings.c.relation,
                           control_mappings.c.strength, control_mappings.c.id.label("mapping_id"))
                    .select_from(control_mappings)
                    .join(mine, mine.c.id == mine_col)
                    .where(their_col.in_(ids[start:start + 500]),
                           mine.c.version_id == project["framework_version_id"])
                )
                if only_control is not None:
                    query = query.where(mine_col == only_control)
                for r in conn.execute(query):
                    for src in covered[r.theirs]:
                        out.setdefault(r.mine, []).append({
                            "projectId": str(src.project_id), "project": src.name, "controlId": str(src.id),
                            "ref": src.ref, "label": src.label, "relation": r.relation, "strength": r.strength,
                            "mappingId": str(r.mapping_id), "direction": direction})
        return out

    def _visible_evidence(self, conn: Connection, principal: Principal, evidence_id: uuid.UUID) -> Any:
        row = conn.execute(select(evidence_t).where(evidence_t.c.id == evidence_id)).mappings().first()
        if row is None:
            raise not_found("evidence")
        try:
            project, _ = visible_project(conn, principal, row["project_id"], "evidence.read")
        except AppError as exc:
            raise not_found("evidence") from exc
        return row, project

