"""Use cases of evidence files: upload (the body is streamed by the route), list, read,
download authorization. Processing lives in studio/documents/processor.py."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError

from studio.db.engine import Database, utcnow
from studio.documents.detect import sniff
from studio.documents.repository import EvidenceFileRepository
from studio.documents.storage import Storage, StoredObject, Writer
from studio.domains.evidence import workflow
from studio.domains.evidence.repository import EvidenceRepository
from studio.domains.evidence.service import subject
from studio.domains.projects.repository import ProjectRepository
from studio.domains.projects.service import stream_of
from studio.errors import AppError, not_found
from studio.permissions import allowed
from studio.principal import Principal
from studio.records import json_value, record

log = structlog.get_logger("studio.documents")
RECORD_ATTEMPTS = 5

FILE_FIELDS = (
    "id", "evidence_id", "project_id", "file_name", "revision", "size", "sha256",
    "declared_type", "detected_type", "type_mismatch", "effective_date", "uploaded_by",
    "uploaded_at", "status", "status_reason", "page_count", "word_count", "text_truncated",
    "processed_at",
)  # fmt: skip


def file_wire(row: Any) -> dict[str, Any]:
    return record(row, FILE_FIELDS)


@dataclass(frozen=True, slots=True)
class UploadTarget:
    evidence_id: uuid.UUID
    project_id: uuid.UUID
    organization_id: uuid.UUID


def check_head(writer: Writer) -> None:
    """Refuse (415) a stream whose first bytes are no accepted kind, before storing more."""
    if writer.size == 0:
        return
    kind = sniff(writer.head)
    if kind is None or kind in ("svg", "xml"):
        what = {"svg": "SVG images", "xml": "XML files"}.get(kind or "", "this kind of file")
        raise AppError(
            "unsupported_media_type",
            f"{what} cannot be uploaded; accepted are PDF, DOCX, XLSX, CSV, text, Markdown, "
            "JSON, HTML, PNG and JPEG",
        )


class DocumentService:
    def __init__(self, db: Database, storage: Storage, *, max_upload_bytes: int):
        self.db = db
        self.storage = storage
        self.max_upload_bytes = max_upload_bytes

    # -- upload ------------------------------------------------------------------------------
    def _target(
        self, conn: Any, principal: Principal, evidence_id: uuid.UUID
    ) -> tuple[Any, UploadTarget]:
        found = EvidenceRepository(conn).get_visible(principal, evidence_id)
        if found is None or found[1] is None:
            raise not_found("evidence")
        row, role = found
        workflow.check_edit(subject(principal, role, row), "takes no new files")
        return row, UploadTarget(row["id"], row["project_id"], row["organization_id"])

    def upload_target(self, principal: Principal, evidence_id: uuid.UUID) -> UploadTarget:
        """Check, before any byte is stored, that the caller may add files to this evidence."""
        with self.db.read() as conn:
            return self._target(conn, principal, evidence_id)[1]

    def new_writer(self) -> Writer:
        return self.storage.writer(self.max_upload_bytes)

    def finish(self, writer: Writer) -> StoredObject:
        """Commit a fully received stream to storage, or refuse it (empty, wrong kind)."""
        if writer.size == 0:
            writer.abort()
            raise AppError(
                "validation_error",
                "the file is empty",
                details=[{"field": "file", "message": "a file must have at least one byte"}],
            )
        check_head(writer)
        return writer.commit()

    def record(
        self,
        principal: Principal,
        evidence_id: uuid.UUID,
        stored: StoredObject,
        *,
        file_name: str,
        declared_type: str | None,
        effective_date: dt.date | None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Record a stored object as the next revision of `file_name` and announce it."""
        try:
            for attempt in range(1, RECORD_ATTEMPTS + 1):
                try:
                    row, duplicates = self._record_once(
                        principal,
                        evidence_id,
                        stored,
                        file_name,
                        declared_type,
                        effective_date,
                        request_id,
                    )
                    break
                except IntegrityError as exc:
                    # Defence in depth behind the evidence row lock: a lost race for
                    # a revision number takes the next one.
                    if attempt == RECORD_ATTEMPTS:
                        raise AppError(
                            "conflict", "other revisions of this file are being uploaded; retry"
                        ) from exc
        except BaseException:
            self._discard(stored)
            raise
        return {
            "file": file_wire(row),
            "duplicates": [
                {
                    "id": str(d["id"]),
                    "evidenceId": str(d["evidence_id"]),
                    "fileName": d["file_name"],
                    "revision": d["revision"],
                    "uploadedAt": json_value(d["uploaded_at"]),
                }
                for d in duplicates
            ],
        }

    def _record_once(
        self,
        principal: Principal,
        evidence_id: uuid.UUID,
        stored: StoredObject,
        file_name: str,
        declared_type: str | None,
        effective_date: dt.date | None,
        request_id: str | None,
    ) -> tuple[Any, list[Any]]:
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            _, target = self._target(uow.conn, principal, evidence_id)
            repo = EvidenceFileRepository(uow.conn)
            # Uploads to one evidence item take turns for the revision number (a row lock
            # on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers).
            repo.lock_evidence(target.evidence_id)
            duplicates = repo.same_content(target.project_id, stored.sha256)
            file_id = uuid.uuid4()
            row = repo.create(
                {
                    "id": file_id,
                    "evidence_id": target.evidence_id,
                    "project_id": target.project_id,
                    "organization_id": target.organization_id,
                    "file_name": file_name,
                    "revision": repo.next_revision(target.evidence_id, file_name),
                    "storage_key": stored.key,
                    "size": stored.size,
                    "sha256": stored.sha256,
                    "declared_type": (declared_type or None) and declared_type[:255],
                    "detected_type": None,
                    "type_mismatch": False,
                    "effective_date": effective_date,
                    "uploaded_by": principal.user_id,
                    "uploaded_at": utcnow(),
                    "status": "pending",
                    "status_reason": None,
                    "page_count": None,
                    "word_count": None,
                    "text": None,
                    "text_truncated": False,
                    "processed_at": None,
                }
            )
            uow.touch(target.organization_id)
            uow.emit(
                "evidence.uploaded",
                stream_of(target.project_id),
                {
                    "evidenceId": str(target.evidence_id),
                    "projectId": str(target.project_id),
                    "fileId": str(file_id),
                    "fileName": file_name,
                    "revision": row["revision"],
                    "sha256": stored.sha256,
                    "size": stored.size,
                    "declaredType": row["declared_type"],
                    "duplicateOf": [str(d["id"]) for d in duplicates],
                },
                source="documents",
            )
        return row, duplicates

    def _discard(self, stored: StoredObject) -> None:
        """Remove an object whose row did not commit, unless another row uses it."""
        if not stored.created:
            return
        try:
            with self.db.read() as conn:
                if EvidenceFileRepository(conn).key_in_use(stored.key):
                    return
            self.storage.delete(stored.key)
        except Exception as exc:
            log.warning("orphan_object", key=stored.key, error=str(exc))

    # -- reads ---------------------------------------------------------------------------------
    def _visible_file(self, conn: Any, principal: Principal, file_id: uuid.UUID) -> Any:
        row = EvidenceFileRepository(conn).get(file_id)
        if row is None:
            raise not_found("file")
        found = ProjectRepository(conn).get_visible(principal, row["project_id"])
        if found is None or found[1] is None or not allowed(found[1], "evidence.read"):
            raise not_found("file")
        return row

    def list_for_evidence(
        self, principal: Principal, evidence_id: uuid.UUID, *, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The files of an evidence item, every revision, newest first."""
        with self.db.read() as conn:
            found = EvidenceRepository(conn).get_visible(principal, evidence_id)
            if found is None or found[1] is None or not allowed(found[1], "evidence.read"):
                raise not_found("evidence")
            page = EvidenceFileRepository(conn).find_all(
                equal={"evidence_id": evidence_id},
                sort="uploaded_at",
                desc=True,
                cursor=cursor,
                limit=limit,
            )
            return [file_wire(r) for r in page.items], page.next_cursor

    def get(self, principal: Principal, file_id: uuid.UUID) -> dict[str, Any]:
        """One revision with its processing status."""
        with self.db.read() as conn:
            return file_wire(self._visible_file(conn, principal, file_id))

    def text(self, principal: Principal, file_id: uuid.UUID) -> dict[str, Any]:
        """The text extracted from one revision (empty until processed)."""
        with self.db.read() as conn:
            row = self._visible_file(conn, principal, file_id)
            return {
                "id": str(row["id"]),
                "status": row["status"],
                "text": row["text"] or "",
                "truncated": row["text_truncated"],
                "wordCount": row["word_count"],
            }

    def for_download(self, principal: Principal, file_id: uuid.UUID) -> Any:
        """The revision row, if the caller may see its project (404 otherwise)."""
        with self.db.read() as conn:
            return self._visible_file(conn, principal, file_id)


class ExtractedText:
    """The AI service's text source: the text extracted from the processed file revision
    named by an evidence.processed event (`fileId`), read from its row."""

    def text_for(self, conn: Any, data: dict[str, Any]) -> str | None:
        try:
            file_id = uuid.UUID(str(data.get("fileId")))
        except ValueError:
            return None
        return EvidenceFileRepository(conn).text(file_id)
