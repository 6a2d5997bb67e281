"""Building the AI service from settings: the one place that picks embedder and index."""

from __future__ import annotations

from studio.ai.embedders import choose_embedder
from studio.ai.service import AiService, EvidenceTextSource, Runtime
from studio.ai.vectors import SqlVectorIndex
from studio.db.engine import Database
from studio.domains.evidence.service import EvidenceService
from studio.settings import Settings


def build_ai(db: Database, settings: Settings, *, evidence: EvidenceService,
             text_source: EvidenceTextSource | None = None) -> AiService:
    """The AI service; its embedder and index are built on first use, not here."""
    vocabulary = settings.data_dir / "ai" / "tfidf-vocabulary.json"

    def build(corpus: list[str]) -> Runtime:
        # corpus: the imported controls' texts, which the statistical embedder is fitted on.
        embedder, status = choose_embedder(settings.ai_embedder, vocabulary, corpus,
                                           tfidf_dim=settings.ai_tfidf_dim)
        return embedder, status, SqlVectorIndex(db.engine, embedder.name, embedder.dim)

    return AiService(db, build, evidence=evidence, text_source=text_source,
                     suggestions=settings.ai_suggestions)
