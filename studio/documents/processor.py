"""The processing queue's handler: a consumer of evidence.uploaded.

For each uploaded revision: detect the real type (allowlist, polyglots, lying names),
extract text within the limits (outside the write transaction), record page count, word
count and text, and announce evidence.processed or evidence.processing_failed (with a
reason a person can read).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import structlog
from sqlalchemy.engine import Connection

from studio.db.engine import utcnow
from studio.documents.detect import MIME, Refused, detect
from studio.documents.extract import Extraction, ExtractionFailed, Limits, extract
from studio.documents.repository import EvidenceFileRepository
from studio.documents.storage import LocalStorage, ObjectNotFound, Storage
from studio.domains.projects.service import stream_of

if TYPE_CHECKING:
    from studio.db.engine import Database, UnitOfWork
    from studio.events.envelope import StoredEvent

log = structlog.get_logger("studio.documents")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What detection and extraction made of one stored object (computed outside any
    transaction by `prepare`, recorded inside it by `handle_prepared`)."""

    storage_key: str
    file_name: str
    declared_type: str | None
    kind: str | None
    mismatch: str | None
    result: Extraction | None
    reason: str | None


class DocumentProcessor:
    """Consumer: evidence.uploaded -> evidence.processed | evidence.processing_failed.

    Detection and extraction (seconds for a large file) run in `prepare`, before the
    dispatcher opens the write transaction, so the database's write lock is held only
    while the outcome is recorded. `handle` (no prepared outcome: a retry, or a processor
    built without a database) does both inside the transaction.

    Idempotent: a revision that is no longer pending is skipped, so a redelivered event
    (or a replay) neither processes it twice nor announces it twice. The outcome is a
    fact recorded once, not a projection, so `reset` clears nothing.
    """

    name: ClassVar[str] = "documents.processor"
    subscriptions: ClassVar[tuple[str, ...]] = ("evidence.uploaded",)
    side_effects: ClassVar[bool] = False
    # Prepared outcomes of one pass are held until its transaction commits; each carries
    # up to Limits.max_text_chars of text, so a pass prepares a few files, not a batch.
    prepare_limit: ClassVar[int] = 4

    def __init__(self, storage: Storage, limits: Limits | None = None, db: Database | None = None):
        self.storage = storage
        self.limits = limits or Limits()
        self.db = db

    def prepare(self, event: StoredEvent) -> Outcome | None:
        """Detection and extraction for `event`'s file, outside any transaction."""
        file_id = _file_id(event)
        if file_id is None or self.db is None:
            return None
        with self.db.read() as conn:
            row = EvidenceFileRepository(conn).get(file_id)
        if row is None or row["status"] != "pending":
            return None
        return self._process(row, file_id)

    def handle(self, uow: UnitOfWork, event: StoredEvent) -> None:
        self.handle_prepared(uow, event, None)

    def handle_prepared(self, uow: UnitOfWork, event: StoredEvent, prepared: Outcome | None) -> None:
        file_id = _file_id(event)
        if file_id is None:
            log.warning("uploaded_event_without_file", event_id=str(event.id))
            return
        # The row lock makes a second worker holding the same event wait, then skip it.
        row = EvidenceFileRepository(uow.conn).locked(file_id)
        if row is None or row["status"] != "pending":
            return
        outcome = prepared
        if outcome is None or (outcome.storage_key, outcome.file_name, outcome.declared_type) != (
            row["storage_key"], row["file_name"], row["declared_type"]
        ):
            outcome = self._process(row, file_id)
        self._record(uow, row, file_id, outcome)

    def _process(self, row: Any, file_id: uuid.UUID) -> Outcome:
        """Detect and extract; every failure of the file itself becomes a reason."""
        kind: str | None = None
        mismatch: str | None = None
        result: Extraction | None = None
        reason: str | None = None
        try:
            with self._local_copy(row["storage_key"]) as path:
                detection = detect(
                    path,
                    row["file_name"],
                    row["declared_type"],
                    max_zip_entries=self.limits.max_zip_entries,
                )
                kind, mismatch = detection.kind, detection.mismatch
                result = extract(path, kind, self.limits)
        except (Refused, ExtractionFailed) as exc:
            reason = str(exc)
        except ObjectNotFound:
            reason = "the stored file is missing; upload it again"
        except Exception as exc:  # a parser bug must not park the queue: the file fails
            log.exception("processing_crashed", file_id=str(file_id), error=repr(exc))
            reason = "the file could not be read (its format is damaged or unusual)"
        return Outcome(
            row["storage_key"], row["file_name"], row["declared_type"], kind, mismatch, result, reason
        )

    def _record(self, uow: UnitOfWork, row: Any, file_id: uuid.UUID, outcome: Outcome) -> None:
        kind, mismatch, result = outcome.kind, outcome.mismatch, outcome.result
        base = {
            "evidenceId": str(row["evidence_id"]),
            "projectId": str(row["project_id"]),
            "fileId": str(file_id),
            "sha256": row["sha256"],
            "detectedType": MIME.get(kind or ""),
            "typeMismatch": mismatch,
        }
        values: dict[str, Any] = {
            "detected_type": MIME.get(kind or ""),
            "type_mismatch": mismatch is not None,
            "processed_at": utcnow(),
        }
        if result is None:
            values.update(status="failed", status_reason=outcome.reason)
            event_type, data = "evidence.processing_failed", {**base, "reason": outcome.reason}
        else:
            note = "; ".join(n for n in (mismatch, result.note) if n) or None
            values.update(
                status="processed",
                status_reason=note,
                page_count=result.page_count,
                word_count=result.word_count,
                text=result.text,
                text_truncated=result.truncated,
            )
            event_type = "evidence.processed"
            data = {
                **base,
                "pageCount": result.page_count,
                "wordCount": result.word_count,
                "textTruncated": result.truncated,
                "note": note,
            }
        EvidenceFileRepository(uow.conn).update(file_id, values)
        uow.touch(row["organization_id"])
        uow.emit(event_type, stream_of(row["project_id"]), data, source="documents")
        log.info("file_processed", file_id=str(file_id), status=values["status"], kind=kind)

    def reset(self, conn: Connection) -> None:
        """Nothing to clear: outcomes are recorded facts (see the class docstring)."""

    @contextlib.contextmanager
    def _local_copy(self, key: str) -> Iterator[Path]:
        """A local path to the object: the file itself for local storage, else a temporary copy."""
        if isinstance(self.storage, LocalStorage):
            path = self.storage.path_of(key)
            if not path.is_file():
                raise ObjectNotFound(key)
            yield path
            return
        with tempfile.NamedTemporaryFile(prefix="studio-process-") as handle:
            for chunk in self.storage.open(key):
                handle.write(chunk)
            handle.flush()
            yield Path(handle.name)


def _file_id(event: StoredEvent) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(event.data.get("fileId")))
    except ValueError:
        return None


def ocr_available() -> bool:
    return shutil.which("tesseract") is not None
