"""Queries on evidence files; visibility goes through the project, as everywhere."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.engine import RowMapping

from studio.db.repository import Repository
from studio.documents.models import evidence_files
from studio.domains.evidence.models import evidence


class EvidenceFileRepository(Repository):
    table = evidence_files
    sortable = frozenset({"uploaded_at"})

    def lock_evidence(self, evidence_id: uuid.UUID) -> None:
        self.conn.execute(
            select(evidence.c.id).where(evidence.c.id == evidence_id).with_for_update()
        )

    def next_revision(self, evidence_id: uuid.UUID, file_name: str) -> int:
        query = select(func.coalesce(func.max(evidence_files.c.revision), 0)).where(
            evidence_files.c.evidence_id == evidence_id, evidence_files.c.file_name == file_name
        )
        return int(self.conn.execute(query).scalar_one()) + 1

    def same_content(self, project_id: uuid.UUID, sha256: str, limit: int = 20) -> list[RowMapping]:
        query = (
            select(evidence_files)
            .where(evidence_files.c.project_id == project_id, evidence_files.c.sha256 == sha256)
            .order_by(evidence_files.c.uploaded_at, evidence_files.c.id)
            .limit(limit)
        )
        return list(self.conn.execute(query).mappings())

    def key_in_use(self, storage_key: str) -> bool:
        query = (
            select(evidence_files.c.id).where(evidence_files.c.storage_key == storage_key).limit(1)
        )
        return self.conn.execute(query).first() is not None

    def locked(self, file_id: uuid.UUID) -> RowMapping | None:
        """The revision's row, locked until the transaction ends (PostgreSQL; SQLite's one
        writer needs no row lock): a second worker holding the same event waits, then
        finds it handled."""
        query = select(evidence_files).where(evidence_files.c.id == file_id).with_for_update()
        return self.conn.execute(query).mappings().first()

    def text(self, file_id: uuid.UUID) -> str | None:
        return self.conn.execute(select(evidence_files.c.text).where(evidence_files.c.id == file_id)).scalar()
