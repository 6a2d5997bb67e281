"""Use cases of the AI service: analysis of processed evidence, decisions on suggestions,
quality overrides, semantic search, cross-framework mapping suggestions, status."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import structlog
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from studio.ai.controls import ControlSource, ControlText
from studio.ai.embedders import Embedder, EmbedderStatus
from studio.ai.engine import MAX_ANALYSED_CHARS, ControlCatalog, Suggestion
from studio.ai.models import (
    ai_analyses,
    ai_mapping_suggestions,
    ai_quality_overrides,
    ai_suggestions,
)
from studio.ai.quality import score_quality, text_profile
from studio.ai.vectors import VectorIndex, VectorItem
from studio.db.engine import Database, UnitOfWork, utcnow
from studio.domains.evidence.models import evidence as evidence_t
from studio.domains.evidence.repository import EvidenceRepository
from studio.domains.projects.models import projects as projects_t
from studio.domains.projects.repository import project_scope
from studio.domains.projects.service import stream_of
from studio.domains.users.service import require
from studio.errors import AppError, forbidden, not_found
from studio.permissions import allowed
from studio.principal import Principal
from studio.records import record

log = structlog.get_logger("studio.ai")

# Cosine similarities that count as "barely" and "closely" related, per kind of embedder:
# measured on the evaluation set (correct controls vs the rest), see docs/ai.md.
RELEVANCE_RANGE = {"neural": (0.15, 0.55), "statistical": (0.02, 0.30)}
SUGGESTION_FIELDS = ("id", "evidence_id", "project_id", "framework", "control_ref", "control_title",
                     "rank", "score", "matched", "model", "status", "decided_by", "decided_at",
                     "created_at")
MAPPING_FIELDS = ("id", "source_framework", "source_ref", "target_framework", "target_ref",
                  "relation", "strength", "score", "origin", "model", "status", "decided_by",
                  "decided_at", "created_at")


def suggestion_wire(row: Any) -> dict[str, Any]:
    out = record(row, SUGGESTION_FIELDS)
    out["matchedSentences"] = out.pop("matched")
    return out


class EvidenceTextSource(Protocol):
    """Where the extracted text of processed evidence comes from.

    The document service's `evidence.processed` event carries `text` (extracted, UTF-8)
    today; a source that loads it from object storage by `textKey` can replace this one.
    """

    def text_for(self, conn: Connection, data: dict[str, Any]) -> str | None:
        """The evidence's extracted text, or None when there is none."""


class EventTextSource:
    """Reads the text from the event itself (`data["text"]`)."""

    def text_for(self, conn: Connection, data: dict[str, Any]) -> str | None:
        value = data.get("text")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class PreparedAnalysis:
    """What model inference produced for one evidence item, before anything is written."""

    title: str
    text: str | None
    error: str | None
    vector: np.ndarray | None
    suggestions: list[Suggestion]


class AnalysisUnavailable(Exception):
    """The evidence cannot be analysed; the message is shown on the evidence as is."""


def _usable_text(raw: str | None) -> str:
    if raw is None or not raw.strip():
        raise AnalysisUnavailable("analysis unavailable: no text was extracted from the evidence")
    text = raw[:MAX_ANALYSED_CHARS]
    profile = text_profile(text)
    if profile["printable_ratio"] < 0.85 or profile["letter_ratio"] < 0.2 or profile["words"] < 1:
        raise AnalysisUnavailable(
            "analysis unavailable: the extracted text is not readable (binary or corrupt content)")
    return text


class AiService:
    """The AI service's use cases; `embedder` is built on first use, never at import."""

    def __init__(self, db: Database, controls: ControlSource,
                 build: Callable[[], tuple[Embedder, EmbedderStatus, VectorIndex]],
                 *, text_source: EvidenceTextSource | None = None, suggestions: int = 5):
        self.db = db
        self.controls = controls
        self._build = build
        self._built: tuple[Embedder, EmbedderStatus, VectorIndex] | None = None
        self._catalog: ControlCatalog | None = None
        self._lock = threading.Lock()
        self.text_source = text_source or EventTextSource()
        self.suggestions = suggestions

    # -- runtime --------------------------------------------------------------------------
    def _runtime(self) -> tuple[Embedder, EmbedderStatus, VectorIndex, ControlCatalog]:
        with self._lock:
            if self._built is None:
                self._built = self._build()
                embedder, _, index = self._built
                self._catalog = ControlCatalog(embedder, index)
                for framework in self.controls.frameworks():
                    self._catalog.remember(self.controls.controls(framework))
        embedder, status, index = self._built
        assert self._catalog is not None
        return embedder, status, index, self._catalog

    @property
    def catalog(self) -> ControlCatalog:
        return self._runtime()[3]

    def status(self) -> dict[str, Any]:
        """Which embedder runs, why the preferred one does not if so, and what is indexed."""
        embedder, status, index, _ = self._runtime()
        with self.db.read() as conn:
            count = index.count(conn)
        return {**status.as_dict(), "index": type(index).__name__, "vectors": count,
                "frameworks": self.controls.frameworks()}

    # -- controls -------------------------------------------------------------------------
    def index_framework(self, framework: str, *, batch: int = 64) -> int:
        """Embed a framework's controls in small transactions, so no request waits on all of them."""
        _, _, _, catalog = self._runtime()
        controls = list(self.controls.controls(framework))
        for start in range(0, len(controls), batch):
            with self.db.write(actor="ai") as uow:
                catalog.index_batch(uow.conn, controls[start:start + batch])
        log.info("framework_indexed", framework=framework, controls=len(controls))
        return len(controls)

    # -- evidence analysis ----------------------------------------------------------------
    def prepare(self, data: dict[str, Any]) -> PreparedAnalysis | None:
        """The expensive part of an analysis (model inference), done outside any write
        transaction so SQLite's single write lock is not held while the model runs."""
        with self.db.read() as conn:
            row = conn.execute(select(evidence_t).where(
                evidence_t.c.id == uuid.UUID(str(data["evidenceId"])))).mappings().first()
            return None if row is None else self._compute(conn, row, data)

    def _compute(self, conn: Connection, row: Any, data: dict[str, Any]) -> PreparedAnalysis:
        embedder, _, _, catalog = self._runtime()
        try:
            text = _usable_text(self.text_source.text_for(conn, data))
            try:
                vector = embedder.embed([f"{row['title']}. {text}"])[0]
                suggestions = catalog.suggest(conn, text, self.controls.frameworks(), self.suggestions,
                                              vector=vector)
            except Exception as exc:  # a model failing on one input must not stop the queue
                log.warning("analysis_failed", evidence=str(row["id"]), error=repr(exc))
                raise AnalysisUnavailable(f"analysis unavailable: the model failed on this text "
                                          f"({type(exc).__name__})") from exc
        except AnalysisUnavailable as exc:
            return PreparedAnalysis(row["title"], None, str(exc), None, [])
        return PreparedAnalysis(row["title"], text, None, vector, suggestions)

    def analyze(self, uow: UnitOfWork, event_id: uuid.UUID, data: dict[str, Any],
                prepared: PreparedAnalysis | None = None) -> None:
        """Analyse one processed evidence item inside the caller's transaction.

        Bad input (no text, binary garbage, a model that fails) ends in an analysis with
        status "unavailable" and the reason; only database errors propagate (to be retried).
        `prepared` (from `prepare`) is used when the evidence's title has not changed since.
        """
        evidence_id = uuid.UUID(str(data["evidenceId"]))
        row = uow.conn.execute(select(evidence_t).where(evidence_t.c.id == evidence_id)).mappings().first()
        if row is None:
            return  # deleted since it was processed: nothing to analyse
        _, status, index, _ = self._runtime()
        now = utcnow()
        if prepared is None or prepared.title != row["title"]:
            prepared = self._compute(uow.conn, row, data)
        if prepared.error is not None or prepared.text is None or prepared.vector is None:
            reason = prepared.error or "analysis unavailable: no text was extracted from the evidence"
            self._store_analysis(uow, row, event_id, status.active, now, status_="unavailable",
                                 reason=reason, score=None, breakdown=[], digest=None, chars=0)
            uow.emit("evidence.analyzed", stream_of(row["project_id"]), {
                "evidenceId": str(evidence_id), "projectId": str(row["project_id"]),
                "status": "unavailable", "reason": reason, "model": status.active}, source="ai")
            return
        text, vector, suggestions = prepared.text, prepared.vector, prepared.suggestions
        frameworks = self.controls.frameworks()
        digest = hashlib.sha256(" ".join(text.split()).lower().encode()).hexdigest()
        index.upsert(uow.conn, [VectorItem(f"evidence:{evidence_id}", "evidence", str(row["project_id"]),
                                           vector)])
        linked = self._linked_similarity(row["control_id"], vector, suggestions, frameworks, uow.conn)
        duplicate = uow.conn.execute(
            select(ai_analyses.c.evidence_id).where(
                ai_analyses.c.project_id == row["project_id"], ai_analyses.c.text_sha256 == digest,
                ai_analyses.c.evidence_id != evidence_id).limit(1)).scalar()
        floor, ceiling = RELEVANCE_RANGE[status.kind]
        score, signals = score_quality(
            text=text, similarity=linked[1] if linked else None, control=linked[0] if linked else None,
            effective=row["effective_date"], expires=row["expires_at"],
            duplicate_of=str(duplicate) if duplicate else None, floor=floor, ceiling=ceiling)
        self._store_analysis(uow, row, event_id, status.active, now, status_="analyzed", reason=None,
                             score=score, breakdown=[s.as_dict() for s in signals], digest=digest,
                             chars=len(text))
        self._store_suggestions(uow.conn, row, suggestions, status.active, now)
        overridden = uow.conn.execute(select(func.count()).select_from(ai_quality_overrides).where(
            ai_quality_overrides.c.evidence_id == evidence_id)).scalar_one()
        if not overridden:
            # A reviewer's override stands until the reviewer changes it.
            uow.conn.execute(update(evidence_t).where(evidence_t.c.id == evidence_id)
                             .values(quality_score=score))
        uow.touch(row["organization_id"])
        uow.emit("evidence.analyzed", stream_of(row["project_id"]), {
            "evidenceId": str(evidence_id), "projectId": str(row["project_id"]), "status": "analyzed",
            "model": status.active, "qualityScore": score,
            "suggestions": [{"framework": s.framework, "controlRef": s.ref, "score": round(s.score, 4)}
                            for s in suggestions]}, source="ai")

    def _linked_similarity(self, control_ref: str | None, vector: Any, suggestions: list[Suggestion],
                           frameworks: list[str], conn: Connection) -> tuple[str, float] | None:
        if control_ref:
            for framework in frameworks:
                known = self.catalog.texts.get((framework, control_ref))
                if known is not None:
                    control_vector = self.catalog.control_vectors([known])[0]
                    return control_ref, float(control_vector @ vector)
        if suggestions:
            return suggestions[0].ref, suggestions[0].score
        return None

    def _store_analysis(self, uow: UnitOfWork, row: Any, event_id: uuid.UUID, model: str,
                        now: dt.datetime, *, status_: str, reason: str | None, score: float | None,
                        breakdown: list[dict[str, Any]], digest: str | None, chars: int) -> None:
        uow.conn.execute(delete(ai_analyses).where(ai_analyses.c.evidence_id == row["id"]))
        uow.conn.execute(insert(ai_analyses).values(
            evidence_id=row["id"], project_id=row["project_id"], status=status_, reason=reason,
            model=model, quality_score=score, quality_breakdown=breakdown, text_sha256=digest,
            text_chars=chars, event_id=event_id, analyzed_at=now))

    def _store_suggestions(self, conn: Connection, row: Any, suggestions: list[Suggestion], model: str,
                           now: dt.datetime) -> None:
        # Decided suggestions are kept (they measure the model); open ones are replaced.
        conn.execute(delete(ai_suggestions).where(ai_suggestions.c.evidence_id == row["id"],
                                                  ai_suggestions.c.status == "open"))
        decided = {r for r in conn.execute(select(ai_suggestions.c.framework, ai_suggestions.c.control_ref)
                                           .where(ai_suggestions.c.evidence_id == row["id"]))}
        values = [{"id": uuid.uuid4(), "evidence_id": row["id"], "project_id": row["project_id"],
                   "framework": s.framework, "control_ref": s.ref, "control_title": s.title[:255],
                   "rank": rank, "score": s.score, "matched": s.matched, "model": model, "status": "open",
                   "decided_by": None, "decided_at": None, "created_at": now}
                  for rank, s in enumerate(suggestions, 1) if (s.framework, s.ref) not in decided]
        if values:
            conn.execute(insert(ai_suggestions), values)

    # -- reading and deciding -------------------------------------------------------------
    def _visible_evidence(self, conn: Connection, principal: Principal, evidence_id: uuid.UUID) -> tuple[Any, str]:
        found = EvidenceRepository(conn).get_visible(principal, evidence_id)
        if found is None or found[1] is None:
            raise not_found("evidence")
        return found  # type: ignore[return-value]

    def analysis(self, principal: Principal, evidence_id: uuid.UUID) -> dict[str, Any]:
        """The evidence's latest analysis: status, quality breakdown, suggestions, overrides."""
        with self.db.read() as conn:
            self._visible_evidence(conn, principal, evidence_id)
            analysis = conn.execute(select(ai_analyses).where(ai_analyses.c.evidence_id == evidence_id)
                                    ).mappings().first()
            suggestions = conn.execute(select(ai_suggestions).where(ai_suggestions.c.evidence_id == evidence_id)
                                       .order_by(ai_suggestions.c.rank, ai_suggestions.c.id)).mappings().all()
            overrides = conn.execute(select(ai_quality_overrides)
                                     .where(ai_quality_overrides.c.evidence_id == evidence_id)
                                     .order_by(ai_quality_overrides.c.created_at)).mappings().all()
            current = conn.execute(select(evidence_t.c.quality_score).where(evidence_t.c.id == evidence_id)).scalar()
        return {
            "evidenceId": str(evidence_id),
            "status": analysis["status"] if analysis else "pending",
            "reason": analysis["reason"] if analysis else None,
            "model": analysis["model"] if analysis else None,
            "qualityScore": current,
            "computedQualityScore": analysis["quality_score"] if analysis else None,
            "qualityBreakdown": analysis["quality_breakdown"] if analysis else [],
            "analyzedAt": record(analysis, ("analyzed_at",))["analyzedAt"] if analysis else None,
            "suggestions": [suggestion_wire(s) for s in suggestions],
            "overrides": [record(o, ("id", "computed_score", "score", "reason", "reviewer_id", "created_at"))
                          for o in overrides],
        }

    def decide(self, principal: Principal, suggestion_id: uuid.UUID, decision: str, *,
               request_id: str | None = None) -> dict[str, Any]:
        """Accept (link the evidence to the control) or dismiss a suggestion; both are kept."""
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            suggestion = uow.conn.execute(select(ai_suggestions).where(ai_suggestions.c.id == suggestion_id)
                                          ).mappings().first()
            if suggestion is None:
                raise not_found("suggestion")
            row, role = self._visible_evidence(uow.conn, principal, suggestion["evidence_id"])
            may_edit = allowed(role, "evidence.update") or (
                allowed(role, "evidence.update_own") and row["created_by"] == principal.user_id)
            # Accepting links the evidence to a control: an edit, which auditors never make.
            if not may_edit:
                raise forbidden("decide on control suggestions")
            if suggestion["status"] != "open":
                raise AppError("conflict", f"the suggestion is already {suggestion['status']}")
            now = utcnow()
            uow.conn.execute(update(ai_suggestions).where(ai_suggestions.c.id == suggestion_id).values(
                status=decision, decided_by=principal.user_id, decided_at=now))
            data = {"evidenceId": str(row["id"]), "projectId": str(row["project_id"]),
                    "suggestionId": str(suggestion_id), "framework": suggestion["framework"],
                    "controlRef": suggestion["control_ref"], "rank": suggestion["rank"],
                    "score": suggestion["score"], "model": suggestion["model"]}
            if decision == "accepted":
                from studio.domains.compliance.service import evidence_state, link_one_control

                if row["control_id"] is None:
                    # The first accepted control becomes the primary one; later ones are
                    # further links of the project's framework.
                    uow.conn.execute(update(evidence_t).where(evidence_t.c.id == row["id"]).values(
                        control_id=suggestion["control_ref"], updated_at=now,
                        version=evidence_t.c.version + 1))
                    state = evidence_state(uow.conn, row["id"])
                else:
                    state = link_one_control(uow.conn, row["id"], suggestion["control_ref"])
                # With the scoring state, the compliance score counts the new link.
                uow.emit("evidence.control_linked", stream_of(row["project_id"]),
                         {**data, "origin": "suggested", **({"state": state} if state else {})})
            else:
                uow.emit("ai.suggestion_dismissed", stream_of(row["project_id"]), data, source="ai")
            uow.touch(row["organization_id"])
            decided = uow.conn.execute(select(ai_suggestions).where(ai_suggestions.c.id == suggestion_id)
                                       ).mappings().one()
            return suggestion_wire(decided)

    def override_quality(self, principal: Principal, evidence_id: uuid.UUID, score: float, reason: str, *,
                         request_id: str | None = None) -> dict[str, Any]:
        """Record a reviewer's quality score in place of the computed one."""
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            row, role = self._visible_evidence(uow.conn, principal, evidence_id)
            if not allowed(role, "evidence.review"):
                raise forbidden("override the quality score")
            computed = uow.conn.execute(select(ai_analyses.c.quality_score)
                                        .where(ai_analyses.c.evidence_id == evidence_id)).scalar()
            override_id = uuid.uuid4()
            uow.conn.execute(insert(ai_quality_overrides).values(
                id=override_id, evidence_id=evidence_id, project_id=row["project_id"],
                computed_score=computed, score=score, reason=reason, reviewer_id=principal.user_id,
                created_at=utcnow()))
            uow.conn.execute(update(evidence_t).where(evidence_t.c.id == evidence_id).values(
                quality_score=score, version=evidence_t.c.version + 1, updated_at=utcnow()))
            uow.touch(row["organization_id"])
            uow.emit("evidence.quality_overridden", stream_of(row["project_id"]), {
                "evidenceId": str(evidence_id), "projectId": str(row["project_id"]),
                "overrideId": str(override_id), "computedScore": computed, "score": score,
                "reason": reason, "reviewerId": str(principal.user_id)})
        return self.analysis(principal, evidence_id)

    def suggestion_metrics(self, principal: Principal) -> dict[str, Any]:
        """How people decided on suggestions in the caller's visible projects, by rank."""
        with self.db.read() as conn:
            scope = project_scope(principal, ai_suggestions.c.project_id, projects_t.c.organization_id)
            rows = conn.execute(
                select(ai_suggestions.c.rank, ai_suggestions.c.status, func.count())
                .join(projects_t, projects_t.c.id == ai_suggestions.c.project_id)
                .where(*scope).group_by(ai_suggestions.c.rank, ai_suggestions.c.status)).all()
        by_rank: dict[int, dict[str, int]] = {}
        for rank, status_, n in rows:
            by_rank.setdefault(rank, {"open": 0, "accepted": 0, "dismissed": 0})[status_] = n
        accepted = sum(r["accepted"] for r in by_rank.values())
        decided = accepted + sum(r["dismissed"] for r in by_rank.values())
        return {"accepted": accepted, "decided": decided,
                "acceptanceRate": (accepted / decided) if decided else None,
                "byRank": [{"rank": k, **v} for k, v in sorted(by_rank.items())]}

    # -- search ---------------------------------------------------------------------------
    def visible_project_ids(self, conn: Connection, principal: Principal) -> list[str]:
        scope = project_scope(principal, projects_t.c.id, projects_t.c.organization_id)
        return [str(pid) for pid in conn.execute(select(projects_t.c.id).where(*scope)).scalars()]

    def search(self, principal: Principal, query: str, *, kind: str = "evidence", limit: int = 10) -> list[dict[str, Any]]:
        """Evidence (in the caller's projects) or controls, by meaning."""
        embedder, _, index, catalog = self._runtime()
        vector = embedder.embed([query])[0]
        with self.db.read() as conn:
            if kind == "control":
                return [{"kind": "control", "framework": c.framework, "controlRef": c.ref,
                         "title": c.title, "score": round(s, 4)}
                        for c, s in catalog.rank(conn, vector, self.controls.frameworks(), limit)]
            projects = self.visible_project_ids(conn, principal)
            hits = index.query(conn, vector, limit, kind="evidence", scopes=projects)
            ids = [uuid.UUID(h.item_id.removeprefix("evidence:")) for h in hits]
            rows = {r["id"]: r for r in conn.execute(select(evidence_t).where(
                evidence_t.c.id.in_(ids), evidence_t.c.project_id.in_([uuid.UUID(p) for p in projects]))
            ).mappings()} if ids else {}
        return [{"kind": "evidence", "evidenceId": str(i), "projectId": str(rows[i]["project_id"]),
                 "title": rows[i]["title"], "status": rows[i]["status"], "score": round(h.score, 4)}
                for i, h in zip(ids, hits, strict=True) if i in rows]

    # -- cross-framework mappings ---------------------------------------------------------
    def suggest_mappings(self, source: str, target: str, *, per_control: int = 3,
                         threshold: float = 0.5) -> int:
        """Propose control pairs between two frameworks, with relation and strength."""
        embedder, status, _, catalog = self._runtime()
        sources = list(self.controls.controls(source))
        if not sources or not list(self.controls.controls(target)):
            raise AppError("not_found", "both frameworks must be imported")
        floor, ceiling = RELEVANCE_RANGE[status.kind]
        threshold = max(threshold, floor)
        now = utcnow()
        created = 0
        with self.db.write(actor="ai") as uow:
            existing = {(r.source_ref, r.target_ref) for r in uow.conn.execute(
                select(ai_mapping_suggestions.c.source_ref, ai_mapping_suggestions.c.target_ref).where(
                    ai_mapping_suggestions.c.source_framework == source,
                    ai_mapping_suggestions.c.target_framework == target))}
            vectors = embedder.embed([c.text for c in sources])
            rows = []
            for control, vector in zip(sources, vectors, strict=True):
                for match, score in catalog.rank(uow.conn, vector, [target], per_control):
                    if score < threshold or (control.ref, match.ref) in existing:
                        continue
                    relation = _relation(control, match, score, ceiling)
                    rows.append({"id": uuid.uuid4(), "source_framework": source, "source_ref": control.ref,
                                 "target_framework": target, "target_ref": match.ref,
                                 "relation": relation,
                                 "strength": round(10 * min(max((score - floor) / (ceiling - floor), 0), 1)),
                                 "score": score, "origin": "suggested", "model": status.active,
                                 "status": "open", "decided_by": None, "decided_at": None,
                                 "created_at": now})
            if rows:
                uow.conn.execute(insert(ai_mapping_suggestions), rows)
                created = len(rows)
            uow.emit("ai.mappings_suggested", f"framework-mapping:{source}:{target}"[:100],
                     {"source": source, "target": target, "created": created}, source="ai")
        return created

    def mapping_suggestions(self, source: str, target: str, *, limit: int = 100) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(select(ai_mapping_suggestions).where(
                ai_mapping_suggestions.c.source_framework == source,
                ai_mapping_suggestions.c.target_framework == target)
                .order_by(ai_mapping_suggestions.c.score.desc(), ai_mapping_suggestions.c.id).limit(limit)
            ).mappings().all()
        return [record(r, MAPPING_FIELDS) for r in rows]

    def decide_mapping(self, principal: Principal, mapping_id: uuid.UUID, decision: str, *,
                       request_id: str | None = None) -> dict[str, Any]:
        """Accept or dismiss a proposed mapping; the frameworks domain projects accepted ones."""
        require(principal, "frameworks.manage")
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            row = uow.conn.execute(select(ai_mapping_suggestions).where(
                ai_mapping_suggestions.c.id == mapping_id)).mappings().first()
            if row is None:
                raise not_found("mapping suggestion")
            if row["status"] != "open":
                raise AppError("conflict", f"the mapping suggestion is already {row['status']}")
            uow.conn.execute(update(ai_mapping_suggestions).where(ai_mapping_suggestions.c.id == mapping_id)
                             .values(status=decision, decided_by=principal.user_id, decided_at=utcnow()))
            event = "control_mapping.accepted" if decision == "accepted" else "ai.mapping_dismissed"
            uow.emit(event, f"framework-mapping:{row['source_framework']}:{row['target_framework']}"[:100], {
                "mappingSuggestionId": str(mapping_id), "source": {"framework": row["source_framework"],
                                                                   "ref": row["source_ref"]},
                "target": {"framework": row["target_framework"], "ref": row["target_ref"]},
                "relation": row["relation"], "strength": row["strength"], "origin": "suggested"})
            decided = uow.conn.execute(select(ai_mapping_suggestions).where(
                ai_mapping_suggestions.c.id == mapping_id)).mappings().one()
        return record(decided, MAPPING_FIELDS)


def _relation(source: ControlText, target: ControlText, score: float, ceiling: float) -> str:
    if source.title.strip().lower() == target.title.strip().lower() and score >= ceiling:
        return "equal"
    if score >= ceiling:
        return "intersects"
    return "related"

