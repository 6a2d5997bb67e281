"""Evidence files through the HTTP API: upload (multipart and raw), revisions, duplicates,
download with ranges, visibility, limits, and the processing consumer's outcome."""

from __future__ import annotations

import hashlib
import threading
import uuid

import pytest
from sqlalchemy import update

from studio.documents import processor as processor_module
from studio.documents.extract import OCR_UNAVAILABLE
from studio.documents.models import evidence_files
from studio.documents.processor import ocr_available
from tests import corpus
from tests.documents_support import (
    events_of,
    file_rows,
    moto_endpoint,  # noqa: F401  (fixture)
    multipart,
    new_evidence,
    process_all,
    stored_objects,
)

API = "/api/v1"


def upload_raw(
    client, actor, evidence_id, name, data, content_type="application/octet-stream", **params
):
    return client.put(
        f"{API}/evidence/{evidence_id}/files/raw",
        params={"filename": name, **params},
        content=data,
        headers={**actor.headers, "Content-Type": content_type},
    )


def upload_form(
    client, actor, evidence_id, name, data, content_type="application/octet-stream", **fields
):
    body, headers = multipart(name, data, content_type, fields)
    return client.post(
        f"{API}/evidence/{evidence_id}/files", content=body, headers={**actor.headers, **headers}
    )


def test_multipart_upload_is_stored_announced_processed_and_downloadable(client, world, container):
    evidence_id = new_evidence(container, world["customer"], world.project_a)
    data = corpus.pdf(3)
    answer = upload_form(
        client,
        world["customer"],
        evidence_id,
        "Access policy.pdf",
        data,
        "application/pdf",
        effectiveDate="2026-06-30",
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()["data"]
    meta = body["file"]
    assert body["duplicates"] == []
    assert meta["fileName"] == "Access policy.pdf" and meta["revision"] == 1
    assert meta["size"] == len(data) and meta["sha256"] == hashlib.sha256(data).hexdigest()
    assert (
        meta["effectiveDate"] == "2026-06-30" and meta["uploadedAt"] and meta["status"] == "pending"
    )

    [uploaded] = events_of(container, "evidence.uploaded")
    assert uploaded.data["sha256"] == meta["sha256"] and uploaded.data["fileId"] == meta["id"]
    assert uploaded.stream == f"project:{world.project_a}"

    [outcome] = process_all(container)
    assert outcome.type == "evidence.processed"
    assert outcome.data["pageCount"] == 3 and outcome.data["wordCount"] == 36
    shown = client.get(f"{API}/files/{meta['id']}", headers=world["viewer"].headers).json()["data"]
    assert shown["status"] == "processed" and shown["detectedType"] == "application/pdf"
    assert shown["pageCount"] == 3 and shown["wordCount"] == 36 and shown["typeMismatch"] is False
    text = client.get(f"{API}/files/{meta['id']}/text", headers=world["viewer"].headers).json()[
        "data"
    ]
    assert "word2x11" in text["text"]

    download = client.get(f"{API}/files/{meta['id']}/content", headers=world["viewer"].headers)
    assert download.status_code == 200
    assert download.content == data
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-disposition"] == (
        "attachment; filename=\"Access policy.pdf\"; filename*=UTF-8''Access%20policy.pdf"
    )
    assert download.headers["accept-ranges"] == "bytes"


def test_reupload_makes_a_new_revision_and_keeps_the_old_one(client, world, container):
    evidence_id = new_evidence(container, world["customer"], world.project_a)
    first = upload_raw(
        client, world["customer"], evidence_id, "users.csv", b"user\nalice\n", "text/csv"
    )
    second = upload_raw(
        client, world["customer"], evidence_id, "users.csv", b"user\nalice\nbob\n", "text/csv"
    )
    other = upload_raw(
        client, world["customer"], evidence_id, "roles.csv", b"role\nadmin\n", "text/csv"
    )
    assert [r.status_code for r in (first, second, other)] == [201, 201, 201]
    assert first.json()["data"]["file"]["revision"] == 1
    assert second.json()["data"]["file"]["revision"] == 2
    assert other.json()["data"]["file"]["revision"] == 1
    listed = client.get(f"{API}/evidence/{evidence_id}/files", headers=world["auditor"].headers)
    items = listed.json()["data"]["items"]
    assert [(i["fileName"], i["revision"]) for i in items] == [
        ("roles.csv", 1),
        ("users.csv", 2),
        ("users.csv", 1),
    ]
    old = first.json()["data"]["file"]["id"]
    assert (
        client.get(f"{API}/files/{old}/content", headers=world["auditor"].headers).content
        == b"user\nalice\n"
    )


def test_same_content_in_the_project_is_reported(client, world, container):
    one = new_evidence(container, world["customer"], world.project_a, "one")
    two = new_evidence(container, world["customer"], world.project_a, "two")
    elsewhere = new_evidence(container, world["admin"], world.project_b, "elsewhere")
    data = corpus.docx(["Identical"])
    first = upload_raw(client, world["customer"], one, "policy.docx", data).json()["data"]
    again = upload_raw(client, world["customer"], two, "copy.docx", data).json()["data"]
    assert [d["id"] for d in again["duplicates"]] == [first["file"]["id"]]
    assert again["duplicates"][0]["evidenceId"] == one
    [_, second_event] = events_of(container, "evidence.uploaded")
    assert second_event.data["duplicateOf"] == [first["file"]["id"]]
    other_project = upload_raw(client, world["admin"], elsewhere, "policy.docx", data).json()[
        "data"
    ]
    assert other_project["duplicates"] == []


def test_range_requests(client, world, container):
    evidence_id = new_evidence(container, world["customer"], world.project_a)
    data = b"0123456789abcdef" * 640
    file_id = upload_raw(client, world["customer"], evidence_id, "data.txt", data).json()["data"][
        "file"
    ]["id"]
    url, headers = f"{API}/files/{file_id}/content", world["customer"].headers
    part = client.get(url, headers={**headers, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert part.headers["content-length"] == "100"
    tail = client.get(url, headers={**headers, "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    open_ended = client.get(url, headers={**headers, "Range": f"bytes={len(data) - 3}-"})
    assert open_ended.content == data[-3:]
    beyond = client.get(url, headers={**headers, "Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(data)}"
    assert beyond.json()["error"]["code"] == "range_not_satisfiable"
    garbage = client.get(url, headers={**headers, "Range": "lines=1-2"})
    assert garbage.status_code == 200 and garbage.content == data


def test_only_people_who_see_the_project_can_download(client, world, container):
    evidence_id = new_evidence(container, world["admin"], world.project_b)
    file_id = upload_raw(client, world["admin"], evidence_id, "b.txt", b"project b only").json()[
        "data"
    ]["file"]["id"]
    for who in (world["customer"], world["viewer"], world.outsider):  # not members of B / other org
        for path in ("", "/content", "/text"):
            answer = client.get(f"{API}/files/{file_id}{path}", headers=who.headers)
            assert answer.status_code == 404, (who.role, path)
        assert (
            client.get(f"{API}/evidence/{evidence_id}/files", headers=who.headers).status_code
            == 404
        )
    assert (
        client.get(f"{API}/files/{file_id}/content", headers=world["admin"].headers).content
        == b"project b only"
    )
    assert (
        client.get(
            f"{API}/files/{uuid.uuid4()}/content", headers=world["admin"].headers
        ).status_code
        == 404
    )


def test_upload_needs_the_update_permission_and_a_visible_project(client, world, container):
    mine = new_evidence(container, world["customer"], world.project_a)
    theirs = new_evidence(container, world["manager"], world.project_a, "manager's")
    foreign = new_evidence(container, world.outsider, world.project_c, "other org")
    data = b"some text"
    assert upload_raw(client, world["viewer"], mine, "a.txt", data).status_code == 403
    assert upload_raw(client, world["auditor"], mine, "a.txt", data).status_code == 403
    assert upload_raw(client, world["customer"], theirs, "a.txt", data).status_code == 403
    foreign_answer = upload_raw(client, world["admin"], foreign, "a.txt", data)
    assert foreign_answer.status_code == 404
    assert upload_form(client, world["customer"], foreign, "a.txt", data).status_code == 404
    assert file_rows(container) == 0 and stored_objects(container) == []
    assert upload_raw(client, world["manager"], mine, "a.txt", data).status_code == 201


def test_evidence_in_review_takes_no_files(client, world, container):
    evidence_id = new_evidence(container, world["customer"], world.project_a)
    container.evidence.submit(world["customer"].principal, uuid.UUID(evidence_id))
    answer = upload_raw(client, world["customer"], evidence_id, "late.txt", b"too late")
    assert answer.status_code == 409
    assert file_rows(container) == 0 and stored_objects(container) == []


def test_processing_is_idempotent(client, world, container):
    evidence_id = new_evidence(container, world["customer"], world.project_a)
    upload_raw(client, world["customer"], evidence_id, "notes.md", b"# Notes\n\nreviewed\n")
    assert [e.type for e in process_all(container)] == ["evidence.processed"]
    assert process_all(container) == []  # redelivery: already processed, nothing emitted
    assert len(events_of(container, "evidence.processed")) == 1


def test_extraction_does_not_hold_the_write_transaction(client, world, container, monkeypatch):
    """While a file's text is extracted (seconds for a large one), other writes go on, even
    to that file's own row: the processor records the outcome in a transaction afterwards."""
    evidence_id = new_evidence(container, world["customer"], world.project_a)
    answer = upload_raw(
        client, world["customer"], evidence_id, "users.csv", b"user,role\nalice,admin\n", "text/csv"
    )
    file_id = uuid.UUID(answer.json()["data"]["file"]["id"])
    written: list[str] = []

    def touch_the_file_row() -> None:
        with container.db.write(actor="test") as uow:
            uow.conn.execute(
                update(evidence_files)
                .where(evidence_files.c.id == file_id)
                .values(file_name=evidence_files.c.file_name)
            )
        written.append("committed")

    real_extract = processor_module.extract

    def extract_while_another_writer_runs(path, kind, limits):
        writer = threading.Thread(target=touch_the_file_row)
        writer.start()
        writer.join(timeout=15)  # blocked behind a held write lock, it would still be waiting
        written.append("extracted")
        return real_extract(path, kind, limits)

    monkeypatch.setattr(processor_module, "extract", extract_while_another_writer_runs)
    [outcome] = process_all(container)
    assert written[:2] == ["committed", "extracted"]
    assert outcome.type == "evidence.processed" and outcome.data["fileId"] == str(file_id)


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        (
            "policy.docx",
            corpus.docx(["Access control policy", "Reviewed quarterly"], pages=2),
            ["Access control policy", "Reviewed quarterly"],
        ),
        ("review.xlsx", corpus.xlsx([["user", "role"], ["alice", "admin"]]), ["alice", "admin"]),
        ("users.csv", b"user,role\nalice,admin\n", ["alice,admin"]),
        ("result.json", b'{"control": "AC-2", "result": ["pass", 3]}', ["AC-2", "pass", "3"]),
        ("notes.md", b"# Policy\n\nAll access is reviewed.\n", ["All access is reviewed."]),
        ("plain.txt", "Zugriffsprüfung abgeschlossen\n".encode(), ["Zugriffsprüfung"]),
    ],
)
def test_text_is_extracted_from_each_format(client, world, container, name, data, expected):
    evidence_id = new_evidence(container, world["customer"], world.project_a)
    file_id = upload_raw(client, world["customer"], evidence_id, name, data).json()["data"]["file"][
        "id"
    ]
    [outcome] = process_all(container)
    assert outcome.type == "evidence.processed", outcome.data
    text = client.get(f"{API}/files/{file_id}/text", headers=world["customer"].headers).json()[
        "data"
    ]
    for piece in expected:
        assert piece in text["text"]
    assert text["wordCount"] == len(text["text"].split())


def test_images_without_tesseract_record_that_ocr_is_unavailable(client, world, container):
    evidence_id = new_evidence(container, world["customer"], world.project_a)
    file_id = upload_raw(client, world["customer"], evidence_id, "screen.png", corpus.png()).json()[
        "data"
    ]["file"]["id"]
    [outcome] = process_all(container)
    shown = client.get(f"{API}/files/{file_id}", headers=world["customer"].headers).json()["data"]
    if ocr_available():
        assert outcome.type in ("evidence.processed", "evidence.processing_failed")
    else:
        assert outcome.type == "evidence.processed"
        assert shown["statusReason"] == OCR_UNAVAILABLE
        assert shown["pageCount"] == 1 and shown["wordCount"] == 0


def test_s3_backend_end_to_end(tmp_path, database_url, moto_endpoint):  # noqa: F811
    from starlette.testclient import TestClient

    from studio.app import create_app
    from studio.bootstrap import bootstrap
    from tests.conftest import make_settings, seed_world

    bucket = f"studio-e2e-{uuid.uuid4().hex[:10]}"
    settings = make_settings(
        tmp_path,
        database_url,
        s3_endpoint=moto_endpoint,
        s3_bucket=bucket,
        s3_access_key="test",
        s3_secret_key="test",
        s3_presign_downloads=True,
    )
    c = bootstrap(settings)
    c.storage.ensure_bucket()
    try:
        world = seed_world(c)
        with TestClient(create_app(c), raise_server_exceptions=False) as client:
            evidence_id = new_evidence(c, world["customer"], world.project_a)
            data = corpus.pdf(2)
            answer = upload_form(
                client, world["customer"], evidence_id, "policy.pdf", data, "application/pdf"
            )
            assert answer.status_code == 201, answer.text
            file_id = answer.json()["data"]["file"]["id"]
            [outcome] = process_all(c)
            assert outcome.type == "evidence.processed" and outcome.data["pageCount"] == 2
            redirect = client.get(
                f"{API}/files/{file_id}/content",
                headers=world["viewer"].headers,
                follow_redirects=False,
            )
            assert redirect.status_code == 307
            assert redirect.headers["location"].startswith(moto_endpoint)
            import urllib.request

            with urllib.request.urlopen(redirect.headers["location"]) as direct:  # noqa: S310
                assert direct.read() == data
            c.settings.s3_presign_downloads = False
            ranged = client.get(
                f"{API}/files/{file_id}/content",
                headers={**world["viewer"].headers, "Range": "bytes=0-7"},
            )
            assert ranged.status_code == 206 and ranged.content == data[:8]
    finally:
        c.close()


def test_raw_upload_keeps_the_effective_date_apart_from_the_upload_time(client, world, container):
    evidence_id = new_evidence(container, world["customer"], world.project_a)
    answer = upload_raw(
        client, world["customer"], evidence_id, "q2.csv", b"a,b\n", effectiveDate="2026-03-31"
    )
    meta = answer.json()["data"]["file"]
    assert meta["effectiveDate"] == "2026-03-31"
    assert meta["uploadedAt"].startswith("2026-") and meta["uploadedAt"] != meta["effectiveDate"]
    bad = upload_raw(client, world["customer"], evidence_id, "q3.csv", b"a,b\n", effectiveDate="Q3")
    assert bad.status_code == 400
    assert file_rows(container) == 1


def test_openapi_documents_the_upload_bodies(client):
    spec = client.get("/openapi.json").json()
    form = spec["paths"]["/api/v1/evidence/{evidence_id}/files"]["post"]["requestBody"]
    assert "multipart/form-data" in form["content"]
    raw = spec["paths"]["/api/v1/evidence/{evidence_id}/files/raw"]["put"]["requestBody"]
    assert "application/octet-stream" in raw["content"]


def test_concurrent_uploads_of_one_name_get_distinct_revisions(world, container):
    from concurrent.futures import ThreadPoolExecutor

    evidence_id = uuid.UUID(new_evidence(container, world["customer"], world.project_a))
    svc = container.documents
    objects = [svc.storage.put([f"revision body {i}\n".encode()]) for i in range(8)]

    def record(stored):
        return svc.record(
            world["customer"].principal,
            evidence_id,
            stored,
            file_name="log.txt",
            declared_type="text/plain",
            effective_date=None,
        )["file"]["revision"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        revisions = sorted(pool.map(record, objects))
    assert revisions == list(range(1, 9))
    assert len(events_of(container, "evidence.uploaded")) == 8
