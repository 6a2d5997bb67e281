"""Shared pieces of the document tests: evidence to upload to, multipart bodies, and a
small loop that drives the processing consumer over the stored events."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from studio.bootstrap import Container
from studio.documents.extract import Limits
from studio.documents.models import evidence_files
from studio.documents.processor import DocumentProcessor
from studio.documents.storage import LocalStorage, S3Storage
from studio.domains.evidence.schemas import EvidenceCreate

BOUNDARY = "studio-test-boundary-7d3f"


def new_evidence(
    c: Container, actor: Any, project_id: uuid.UUID, title: str = "Access review"
) -> str:
    return c.evidence.create(actor.principal, project_id, EvidenceCreate(title=title))["id"]


def multipart(
    filename: bytes | str,
    data: bytes,
    content_type: str = "application/octet-stream",
    fields: dict[str, str] | None = None,
    *,
    close: bool = True,
) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body built byte by byte, so tests control hostile names exactly."""
    if isinstance(filename, str):
        filename = filename.encode("utf-8")
    parts = bytearray()
    for name, value in (fields or {}).items():
        parts += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    parts += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="'.encode()
        + filename
        + f'"\r\nContent-Type: {content_type}\r\n\r\n'.encode()
        + data
        + b"\r\n"
    )
    if close:
        parts += f"--{BOUNDARY}--\r\n".encode()
    return bytes(parts), {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def process_all(c: Container, limits: Limits | None = None, after: int = 0) -> list[Any]:
    """Deliver every evidence.uploaded event after `after` to the processor and return the
    events it emitted. With default limits this is the real dispatcher's work; with other
    limits a processor built with them handles each event in its own write transaction, as
    the dispatcher would."""
    if limits is None and c.dispatcher is not None:
        with c.db.read() as conn:
            head = c.store.head_position(conn)
        c.dispatcher.drain()
        with c.db.read() as conn:
            return c.store.read(conn, after=head, limit=10_000,
                                types=["evidence.processed", "evidence.processing_failed"])
    processor = DocumentProcessor(c.storage, limits)
    with c.db.read() as conn:
        uploaded = c.store.read(conn, after=after, types=["evidence.uploaded"])
    emitted: list[Any] = []
    for event in uploaded:
        with c.db.write(actor="documents.processor") as uow:
            processor.handle(uow, event)
        emitted.extend(uow.appended)
    return emitted


def events_of(c: Container, *types: str) -> list[Any]:
    with c.db.read() as conn:
        return c.store.read(conn, types=list(types), limit=10_000)


def file_rows(c: Container) -> int:
    with c.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(evidence_files)).scalar_one())


def stored_objects(c: Container) -> list[str]:
    """Complete objects in storage, plus any temporary or unfinished upload left behind."""
    storage = c.storage
    if isinstance(storage, LocalStorage):
        complete = [
            p.name for p in storage.root.rglob("*") if p.is_file() and ".tmp" not in p.parts
        ]
        return sorted(complete + [f"tmp:{p.name}" for p in storage.temporary_files()])
    assert isinstance(storage, S3Storage)
    return sorted(storage.keys() + [f"upload:{k}" for k in storage.pending_uploads()])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3-compatible server in a thread of this process, on a free local port."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
