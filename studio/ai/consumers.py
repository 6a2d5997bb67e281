"""The AI service's event consumers: evidence analysis and control indexing.

Wiring (in the consumer table in bootstrap.py):

    evidence.processed  → EvidenceAnalyzer   (suggestions, quality score, evidence vector)
    framework.imported  → ControlIndexer     (control vectors)

`evidence.processed` data this consumer reads (the document service emits it):
    evidenceId (uuid, required), projectId (uuid), fileId (the processed revision, whose
    extracted text the text source reads: studio.documents.service.ExtractedText).
`framework.imported` data: key (the imported framework's key; its controls are read from
the frameworks domain's tables).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from studio.ai.service import AiService, PreparedAnalysis
    from studio.db.engine import UnitOfWork
    from studio.events.envelope import StoredEvent


class EvidenceAnalyzer:
    """Writes control suggestions and a quality score for each processed evidence item."""

    name: ClassVar[str] = "ai.evidence_analyzer"
    subscriptions: ClassVar[tuple[str, ...]] = ("evidence.processed",)
    side_effects: ClassVar[bool] = False

    def __init__(self, service: AiService):
        self.service = service

    def prepare(self, event: StoredEvent) -> PreparedAnalysis | None:
        """Model inference for `event`, outside any transaction; a dispatcher that calls it
        before opening the consumer's transaction passes the result to `handle_prepared`,
        so SQLite's write lock is not held while the model runs."""
        if "evidenceId" not in event.data:
            return None
        return self.service.prepare(event.data)

    def handle_prepared(self, uow: UnitOfWork, event: StoredEvent, prepared: PreparedAnalysis | None) -> None:
        if "evidenceId" not in event.data:
            return
        self.service.analyze(uow, event.id, event.data, prepared)

    def handle(self, uow: UnitOfWork, event: StoredEvent) -> None:
        self.handle_prepared(uow, event, None)

    def reset(self, conn: Connection) -> None:
        # Decisions people took are history, not projection: replay keeps them.
        self.service.reset_analyses(conn)


class ControlIndexer:
    """Embeds an imported framework's controls so suggestions and search can use them."""

    name: ClassVar[str] = "ai.control_indexer"
    subscriptions: ClassVar[tuple[str, ...]] = ("framework.imported",)
    side_effects: ClassVar[bool] = False

    def __init__(self, service: AiService):
        self.service = service

    def handle(self, uow: UnitOfWork, event: StoredEvent) -> None:
        # framework.imported names the framework by id and key; the index names an
        # organization's own framework by key@id (FrameworkControlSource).
        framework = event.data.get("key") or event.data.get("framework")
        framework_id = event.data.get("frameworkId")
        if isinstance(framework_id, str) and framework_id:
            from studio.ai.repository import AiRepository

            framework = AiRepository(uow.conn).framework_name(uuid.UUID(framework_id)) or framework
        if isinstance(framework, str) and framework:
            self.service.index_imported(uow, framework)

    def reset(self, conn: Connection) -> None:
        """Control vectors are derived from the catalogue and rewritten on import; nothing to clear."""
