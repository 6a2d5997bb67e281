"""Use cases of the AI service: analysis of processed evidence, decisions on suggestions,
quality overrides, semantic search, cross-framework mapping suggestions, status.

Its queries are in studio/ai/repository.py; it changes evidence only through the evidence
service, and reads controls only from the imported frameworks."""

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
from sqlalchemy.engine import Connection, RowMapping

from studio.ai.controls import ControlText
from studio.ai.embedders import Embedder, EmbedderStatus
from studio.ai.engine import MAX_ANALYSED_CHARS, ControlCatalog, Suggestion
from studio.ai.quality import score_quality, text_profile
from studio.ai.repository import AiRepository
from studio.ai.vectors import VectorIndex, VectorItem
from studio.db.engine import Database, UnitOfWork, utcnow
from studio.domains.evidence.repository import EvidenceRepository
from studio.domains.evidence.service import EvidenceService
from studio.domains.projects.service import stream_of
from studio.domains.users.service import require
from studio.errors import AppError, forbidden, not_found
from studio.permissions import allowed
from studio.principal import Principal
from studio.records import json_value, record

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
OVERRIDE_FIELDS = ("id", "computed_score", "score", "reason", "reviewer_id", "created_at")

# What the service runs on, built on first use from the imported controls' texts (the
# statistical embedder fits its vocabulary on them).
Runtime = tuple[Embedder, EmbedderStatus, VectorIndex]
BuildRuntime = Callable[[list[str]], Runtime]


def suggestion_wire(row: RowMapping) -> dict[str, Any]:
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
    """The AI service's use cases; its embedder and index are built on first use, never at import."""

    def __init__(self, db: Database, build: BuildRuntime, *, evidence: EvidenceService,
                 text_source: EvidenceTextSource | None = None, suggestions: int = 5):
        self.db = db
        self.evidence = evidence
        self._build = build
        self._built: Runtime | None = None
        self._catalog: ControlCatalog | None = None
        self._lock = threading.Lock()
        self.text_source = text_source or EventTextSource()
        self.suggestions = suggestions

    # -- runtime --------------------------------------------------------------------------
    def _runtime(self) -> tuple[Embedder, EmbedderStatus, VectorIndex, ControlCatalog]:
        with self._lock:
            if self._built is None or self._catalog is None:
                with self.db.read() as conn:
                    repo = AiRepository(conn)
                    controls = [c for framework in repo.frameworks(every=True) for c in repo.controls(framework)]
                self._built = self._build([c.text for c in controls])
                embedder, _, index = self._built
                self._catalog = ControlCatalog(embedder, index)
                self._catalog.remember(controls)
            embedder, status, index = self._built
            return embedder, status, index, self._catalog

    @property
    def catalog(self) -> ControlCatalog:
        return self._runtime()[3]

    def status(self) -> dict[str, Any]:
        """Which embedder runs, why the preferred one does not if so, and what is indexed."""
        _, status, index, _ = self._runtime()
        with self.db.read() as conn:
            count = index.count(conn)
            frameworks = AiRepository(conn).frameworks()
        return {**status.as_dict(), "index": type(index).__name__, "vectors": count,
                "frameworks": frameworks}

    # -- controls -------------------------------------------------------------------------
    def index_framework(self, framework: str, *, batch: int = 64) -> int:
        """Embed a framework's controls in small transactions, so no request waits on all of them."""
        _, _, _, catalog = self._runtime()
        with self.db.read() as conn:
            controls = AiRepository(conn).controls(framework)
        for start in range(0, len(controls), batch):
            with self.db.write(actor="ai") as uow:
                catalog.index_batch(uow.conn, controls[start:start + batch])
        log.info("framework_indexed", framework=framework, controls=len(controls))
        return len(controls)

    def catalog_names(self, organization_id: uuid.UUID | None, *keys: str) -> list[str]:
        """The index names of the frameworks an organization knows by `keys` (None: the shared
        catalog); one it does not see is not found."""
        with self.db.read() as conn:
            repo = AiRepository(conn)
            names = [repo.framework_for(key, organization_id) for key in keys]
        if any(n is None for n in names):
            raise AppError("not_found", "both frameworks must be imported")
        return [n for n in names if n is not None]

    def index_imported(self, uow: UnitOfWork, framework: str, *, batch: int = 64) -> int:
        """Embed a just-imported framework's controls inside the caller's transaction."""
        catalog = self.catalog
        controls = AiRepository(uow.conn).controls(framework)
        for start in range(0, len(controls), batch):
            catalog.index_batch(uow.conn, controls[start:start + batch])
        return len(controls)

    # -- evidence analysis ----------------------------------------------------------------
    def prepare(self, data: dict[str, Any]) -> PreparedAnalysis | None:
        """The expensive part of an analysis (model inference), done outside any write
        transaction so SQLite's single write lock is not held while the model runs."""
        with self.db.read() as conn:
            row = EvidenceRepository(conn).get(uuid.UUID(str(data["evidenceId"])))
            return None if row is None else self._compute(conn, row, data)

    def _compute(self, conn: Connection, row: RowMapping, data: dict[str, Any]) -> PreparedAnalysis:
        embedder, _, _, catalog = self._runtime()
        try:
            text = _usable_text(self.text_source.text_for(conn, data))
            try:
                vector = embedder.embed([f"{row['title']}. {text}"])[0]
                # Only controls of frameworks the evidence's organization sees.
                suggestions = catalog.suggest(conn, text, AiRepository(conn).frameworks(row["organization_id"]),
                                              self.suggestions,
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
        row = EvidenceRepository(uow.conn).get(evidence_id)
        if row is None:
            return  # deleted since it was processed: nothing to analyse
        repo = AiRepository(uow.conn)
        _, status, index, _ = self._runtime()
        now = utcnow()
        if prepared is None or prepared.title != row["title"]:
            prepared = self._compute(uow.conn, row, data)
        if prepared.error is not None or prepared.text is None or prepared.vector is None:
            reason = prepared.error or "analysis unavailable: no text was extracted from the evidence"
            repo.replace_analysis(_analysis(row, event_id, status.active, now, status_="unavailable",
                                            reason=reason, score=None, breakdown=[], digest=None,
                                            chars=0))
            uow.emit("evidence.analyzed", stream_of(row["project_id"]), {
                "evidenceId": str(evidence_id), "projectId": str(row["project_id"]),
                "status": "unavailable", "reason": reason, "model": status.active}, source="ai")
            return
        text, vector, suggestions = prepared.text, prepared.vector, prepared.suggestions
        frameworks = repo.frameworks(row["organization_id"])
        digest = hashlib.sha256(" ".join(text.split()).lower().encode()).hexdigest()
        index.upsert(uow.conn, [VectorItem(f"evidence:{evidence_id}", "evidence", str(row["project_id"]),
                                           vector)])
        linked = self._linked_similarity(row["control_id"], vector, suggestions, frameworks)
        duplicate = repo.same_text(row["project_id"], digest, evidence_id)
        floor, ceiling = RELEVANCE_RANGE[status.kind]
        score, signals = score_quality(
            text=text, similarity=linked[1] if linked else None, control=linked[0] if linked else None,
            effective=row["effective_date"], expires=row["expires_at"],
            duplicate_of=str(duplicate) if duplicate else None, floor=floor, ceiling=ceiling)
        repo.replace_analysis(_analysis(row, event_id, status.active, now, status_="analyzed", reason=None,
                                        score=score, breakdown=[s.as_dict() for s in signals],
                                        digest=digest, chars=len(text)))
        self._store_suggestions(repo, row, suggestions, status.active, now)
        if not repo.is_overridden(evidence_id):
            # A reviewer's override stands until the reviewer changes it.
            self.evidence.record_quality_score(uow, evidence_id, score)
        uow.touch(row["organization_id"])
        uow.emit("evidence.analyzed", stream_of(row["project_id"]), {
            "evidenceId": str(evidence_id), "projectId": str(row["project_id"]), "status": "analyzed",
            "model": status.active, "qualityScore": score,
            "suggestions": [{"framework": s.framework, "controlRef": s.ref, "score": round(s.score, 4)}
                            for s in suggestions]}, source="ai")

    def _linked_similarity(self, control_ref: str | None, vector: np.ndarray, suggestions: list[Suggestion],
                           frameworks: list[str]) -> tuple[str, float] | None:
        if control_ref:
            for framework in frameworks:
                known = self.catalog.texts.get((framework, control_ref))
                if known is not None:
                    control_vector = self.catalog.control_vectors([known])[0]
                    return control_ref, float(control_vector @ vector)
        if suggestions:
            return suggestions[0].ref, suggestions[0].score
        return None

    @staticmethod
    def _store_suggestions(repo: AiRepository, row: RowMapping, suggestions: list[Suggestion], model: str,
                           now: dt.datetime) -> None:
        # Decided suggestions are kept (they measure the model); open ones are replaced.
        repo.drop_open_suggestions(row["id"])
        decided = repo.suggested_controls(row["id"])
        repo.add_suggestions([
            {"id": uuid.uuid4(), "evidence_id": row["id"], "project_id": row["project_id"],
             "framework": s.framework, "control_ref": s.ref, "control_title": s.title[:255],
             "rank": rank, "score": s.score, "matched": s.matched, "model": model, "status": "open",
             "decided_by": None, "decided_at": None, "created_at": now}
            for rank, s in enumerate(suggestions, 1) if (s.framework, s.ref) not in decided])

    def reset_analyses(self, conn: Connection) -> None:
        """Forget analyses and open suggestions before a replay; people's decisions stay."""
        AiRepository(conn).reset_analyses()

    # -- reading and deciding -------------------------------------------------------------
    @staticmethod
    def _visible_evidence(conn: Connection, principal: Principal,
                          evidence_id: uuid.UUID) -> tuple[RowMapping, str]:
        found = EvidenceRepository(conn).get_visible(principal, evidence_id)
        if found is None or found[1] is None:
            raise not_found("evidence")
        return found[0], found[1]

    def analysis(self, principal: Principal, evidence_id: uuid.UUID) -> dict[str, Any]:
        """The evidence's latest analysis: status, quality breakdown, suggestions, overrides."""
        with self.db.read() as conn:
            row, _ = self._visible_evidence(conn, principal, evidence_id)
            repo = AiRepository(conn)
            analysis = repo.analysis(evidence_id)
            suggestions = repo.suggestions(evidence_id)
            overrides = repo.overrides(evidence_id)
        return {
            "evidenceId": str(evidence_id),
            "status": analysis["status"] if analysis else "pending",
            "reason": analysis["reason"] if analysis else None,
            "model": analysis["model"] if analysis else None,
            "qualityScore": row["quality_score"],
            "computedQualityScore": analysis["quality_score"] if analysis else None,
            "qualityBreakdown": analysis["quality_breakdown"] if analysis else [],
            "analyzedAt": json_value(analysis["analyzed_at"]) if analysis else None,
            "suggestions": [suggestion_wire(s) for s in suggestions],
            "overrides": [record(o, OVERRIDE_FIELDS) for o in overrides],
        }

    def decide(self, principal: Principal, suggestion_id: uuid.UUID, decision: str, *,
               request_id: str | None = None) -> dict[str, Any]:
        """Accept (link the evidence to the control) or dismiss a suggestion; both are kept."""
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            repo = AiRepository(uow.conn)
            suggestion = repo.suggestion(suggestion_id)
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
            repo.decide_suggestion(suggestion_id, decision, principal.user_id, utcnow())
            data = {"evidenceId": str(row["id"]), "projectId": str(row["project_id"]),
                    "suggestionId": str(suggestion_id), "framework": suggestion["framework"],
                    "controlRef": suggestion["control_ref"], "rank": suggestion["rank"],
                    "score": suggestion["score"], "model": suggestion["model"]}
            if decision == "accepted":
                # The first accepted control becomes the primary one, later ones further
                # links; with the scoring state, the compliance score counts the new link.
                state = self.evidence.link_control(uow, row, suggestion["control_ref"])
                uow.emit("evidence.control_linked", stream_of(row["project_id"]),
                         {**data, "origin": "suggested", **({"state": state} if state else {})})
            else:
                uow.emit("ai.suggestion_dismissed", stream_of(row["project_id"]), data, source="ai")
            uow.touch(row["organization_id"])
            decided = repo.suggestion(suggestion_id)
            assert decided is not None
            return suggestion_wire(decided)

    def override_quality(self, principal: Principal, evidence_id: uuid.UUID, score: float, reason: str, *,
                         request_id: str | None = None) -> dict[str, Any]:
        """Record a reviewer's quality score in place of the computed one."""
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            row, role = self._visible_evidence(uow.conn, principal, evidence_id)
            if not allowed(role, "evidence.review"):
                raise forbidden("override the quality score")
            repo = AiRepository(uow.conn)
            computed = repo.computed_score(evidence_id)
            override_id = uuid.uuid4()
            repo.add_override({
                "id": override_id, "evidence_id": evidence_id, "project_id": row["project_id"],
                "computed_score": computed, "score": score, "reason": reason,
                "reviewer_id": principal.user_id, "created_at": utcnow()})
            self.evidence.override_quality_score(uow, evidence_id, score)
            uow.touch(row["organization_id"])
            uow.emit("evidence.quality_overridden", stream_of(row["project_id"]), {
                "evidenceId": str(evidence_id), "projectId": str(row["project_id"]),
                "overrideId": str(override_id), "computedScore": computed, "score": score,
                "reason": reason, "reviewerId": str(principal.user_id)})
        return self.analysis(principal, evidence_id)

    def suggestion_metrics(self, principal: Principal) -> dict[str, Any]:
        """How people decided on suggestions in the caller's visible projects, by rank."""
        with self.db.read() as conn:
            rows = AiRepository(conn).decisions_by_rank(principal)
        by_rank: dict[int, dict[str, int]] = {}
        for rank, status_, n in rows:
            by_rank.setdefault(rank, {"open": 0, "accepted": 0, "dismissed": 0})[status_] = n
        accepted = sum(r["accepted"] for r in by_rank.values())
        decided = accepted + sum(r["dismissed"] for r in by_rank.values())
        return {"accepted": accepted, "decided": decided,
                "acceptanceRate": (accepted / decided) if decided else None,
                "byRank": [{"rank": k, **v} for k, v in sorted(by_rank.items())]}

    # -- search ---------------------------------------------------------------------------
    def search(self, principal: Principal, query: str, *, kind: str = "evidence", limit: int = 10) -> list[dict[str, Any]]:
        """Evidence (in the caller's projects) or controls, by meaning."""
        embedder, _, index, catalog = self._runtime()
        vector = embedder.embed([query])[0]
        with self.db.read() as conn:
            repo = AiRepository(conn)
            if kind == "control":
                return [{"kind": "control", "framework": c.framework, "controlRef": c.ref,
                         "title": c.title, "score": round(s, 4)}
                        for c, s in catalog.rank(conn, vector, repo.frameworks(principal.organization_id), limit)]
            projects = repo.visible_project_ids(principal)
            hits = index.query(conn, vector, limit, kind="evidence", scopes=[str(p) for p in projects])
            ids = [uuid.UUID(h.item_id.removeprefix("evidence:")) for h in hits]
            rows = repo.evidence_in(ids, projects)
        return [{"kind": "evidence", "evidenceId": str(i), "projectId": str(rows[i]["project_id"]),
                 "title": rows[i]["title"], "status": rows[i]["status"], "score": round(h.score, 4)}
                for i, h in zip(ids, hits, strict=True) if i in rows]

    # -- cross-framework mappings ---------------------------------------------------------
    def suggest_mappings(self, source: str, target: str, *, per_control: int = 3,
                         threshold: float = 0.5) -> int:
        """Propose control pairs between two frameworks, with relation and strength."""
        embedder, status, _, catalog = self._runtime()
        with self.db.read() as conn:
            repo = AiRepository(conn)
            sources = repo.controls(source)
            if not sources or not repo.controls(target):
                raise AppError("not_found", "both frameworks must be imported")
        floor, ceiling = RELEVANCE_RANGE[status.kind]
        threshold = max(threshold, floor)
        now = utcnow()
        with self.db.write(actor="ai") as uow:
            repo = AiRepository(uow.conn)
            existing = repo.mapping_pairs(source, target)
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
            repo.add_mapping_suggestions(rows)
            uow.emit("ai.mappings_suggested", f"framework-mapping:{source}:{target}"[:100],
                     {"source": source, "target": target, "created": len(rows)}, source="ai")
        return len(rows)

    def mapping_suggestions(self, source: str, target: str, *, limit: int = 100) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = AiRepository(conn).mapping_suggestions(source, target, limit)
        return [record(r, MAPPING_FIELDS) for r in rows]

    def decide_mapping(self, principal: Principal, mapping_id: uuid.UUID, decision: str, *,
                       request_id: str | None = None) -> dict[str, Any]:
        """Accept or dismiss a proposed mapping; the frameworks domain projects accepted ones."""
        require(principal, "frameworks.manage")
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            repo = AiRepository(uow.conn)
            row = repo.mapping_suggestion(mapping_id)
            if row is None:
                raise not_found("mapping suggestion")
            if row["status"] != "open":
                raise AppError("conflict", f"the mapping suggestion is already {row['status']}")
            repo.decide_mapping(mapping_id, decision, principal.user_id, utcnow())
            event = "control_mapping.accepted" if decision == "accepted" else "ai.mapping_dismissed"
            uow.emit(event, f"framework-mapping:{row['source_framework']}:{row['target_framework']}"[:100], {
                "mappingSuggestionId": str(mapping_id), "source": {"framework": row["source_framework"],
                                                                   "ref": row["source_ref"]},
                "target": {"framework": row["target_framework"], "ref": row["target_ref"]},
                "relation": row["relation"], "strength": row["strength"], "origin": "suggested"})
            decided = repo.mapping_suggestion(mapping_id)
            assert decided is not None
        return record(decided, MAPPING_FIELDS)


def _analysis(row: RowMapping, event_id: uuid.UUID, model: str, now: dt.datetime, *, status_: str,
              reason: str | None, score: float | None, breakdown: list[dict[str, Any]], digest: str | None,
              chars: int) -> dict[str, Any]:
    """The `ai_analyses` row of one analysis."""
    return {"evidence_id": row["id"], "project_id": row["project_id"], "status": status_, "reason": reason,
            "model": model, "quality_score": score, "quality_breakdown": breakdown, "text_sha256": digest,
            "text_chars": chars, "event_id": event_id, "analyzed_at": now}


def _relation(source: ControlText, target: ControlText, score: float, ceiling: float) -> str:
    if source.title.strip().lower() == target.title.strip().lower() and score >= ceiling:
        return "equal"
    if score >= ceiling:
        return "intersects"
    return "related"
