"""The hostile corpus: every bad upload gets a clear 4xx or an evidence.processing_failed
event, the server keeps serving, and no partial file or row is left behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from studio.app import create_app
from studio.bootstrap import bootstrap
from studio.documents.extract import Limits
from tests import corpus
from tests.conftest import make_settings, seed_world
from tests.documents_support import (
    BOUNDARY,
    events_of,
    file_rows,
    multipart,
    new_evidence,
    process_all,
    stored_objects,
)

API = "/api/v1"


def put_raw(client, actor, evidence_id, name, data, content_type="application/octet-stream"):
    return client.put(
        f"{API}/evidence/{evidence_id}/files/raw",
        params={"filename": name},
        content=data,
        headers={**actor.headers, "Content-Type": content_type},
    )


def post_form(client, actor, evidence_id, name, data, **kwargs):
    body, headers = multipart(name, data, **kwargs)
    return client.post(
        f"{API}/evidence/{evidence_id}/files", content=body, headers={**actor.headers, **headers}
    )


def assert_clean(client, container, status_answer, status, code):
    assert status_answer.status_code == status, status_answer.text
    error = status_answer.json()["error"]
    assert error["code"] == code and error["message"]
    assert file_rows(container) == 0
    assert stored_objects(container) == []
    assert events_of(container, "evidence.uploaded") == []
    assert client.get("/healthz").status_code == 200


@pytest.fixture
def evidence_id(container, world) -> str:
    return new_evidence(container, world["customer"], world.project_a)


@pytest.mark.parametrize("send", [put_raw, post_form], ids=["raw", "multipart"])
def test_zero_byte_file_is_refused(client, world, container, evidence_id, send):
    answer = send(client, world["customer"], evidence_id, "empty.pdf", b"")
    assert_clean(client, container, answer, 400, "validation_error")
    assert "empty" in answer.json()["error"]["message"]


BAD_NAMES = {
    "dot-dot-slash": "../../etc/passwd",
    "windows-path": "..\\..\\boot.ini",
    "nul": "report\x00.pdf",
    "control": "report\x07\x1b[31m.txt",
    "newline": "report\r\nX-Evil: 1.txt",
    "thousand-chars": "a" * 996 + ".txt",
    "rtl-override": "invoice\u202etxt.exe",
    "zero-width": "pay\u200broll.txt",
    "only-dots": "..",
    "blank": "   ",
}


@pytest.mark.parametrize("name", list(BAD_NAMES.values()), ids=list(BAD_NAMES))
@pytest.mark.parametrize("send", [put_raw, post_form], ids=["raw", "multipart"])
def test_hostile_file_names_are_refused(client, world, container, evidence_id, send, name):
    answer = send(client, world["customer"], evidence_id, name, b"plain text content")
    assert_clean(client, container, answer, 400, "validation_error")
    assert answer.json()["error"]["details"][0]["field"] == "filename"


def test_unicode_names_survive_and_download_safely(client, world, container, evidence_id):
    name = 'Prüfbericht Q3 "final"; v2 — 日本.txt'
    answer = post_form(client, world["customer"], evidence_id, name.replace('"', "'"), b"content")
    assert answer.status_code == 201, answer.text
    file_id = answer.json()["data"]["file"]["id"]
    download = client.get(f"{API}/files/{file_id}/content", headers=world["customer"].headers)
    disposition = download.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Prufbericht Q3 ')
    assert (
        "filename*=UTF-8''Pr%C3%BCfbericht%20Q3%20%27final%27%3B%20v2%20%E2%80%94%20%E6%97%A5%E6%9C%AC.txt"
        in disposition
    )
    assert disposition.isascii() and "\n" not in disposition


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("drawing.svg", corpus.SVG_WITH_SCRIPT),
        ("drawing.png", corpus.SVG_WITH_SCRIPT),
        ("setup.pdf", corpus.EXECUTABLE),
        ("data.xml", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'),
    ],
    ids=["svg-with-script", "svg-named-png", "executable", "xml"],
)
@pytest.mark.parametrize("send", [put_raw, post_form], ids=["raw", "multipart"])
def test_disallowed_types_are_refused_at_upload(
    client, world, container, evidence_id, send, name, data
):
    answer = send(client, world["customer"], evidence_id, name, data)
    assert_clean(client, container, answer, 415, "unsupported_media_type")


FAILING = {
    "truncated-pdf": ("policy.pdf", corpus.truncated_pdf(), "truncated"),
    "encrypted-pdf": ("policy.pdf", corpus.encrypted_pdf(), "password"),
    "zip-bomb-docx": ("policy.docx", corpus.zip_bomb_docx(), "ZIP bomb"),
    "many-parts-docx": ("policy.docx", corpus.many_entries_docx(), "parts"),
    "plain-zip-as-docx": (
        "policy.docx",
        corpus._zip({"a.txt": b"x"}),
        "ZIP archives are not accepted",
    ),
    "polyglot-pdf-zip": ("policy.pdf", corpus.polyglot_pdf_zip(), "ZIP archive"),
    "polyglot-png-html": ("screen.png", corpus.polyglot_png_html(), "polyglot"),
    "png-named-pdf": ("policy.pdf", corpus.png(), "is a PNG image but its name ends in .pdf"),
    "pdf-named-xlsx": ("sheet.xlsx", corpus.pdf(1), "is a PDF document but its name ends in .xlsx"),
    "pdf-named-exe": ("tool.exe", corpus.pdf(1), "not accepted"),
    "broken-json": ("data.json", b'{"control": "AC-2", ', "not valid"),
}


@pytest.mark.parametrize(("name", "data", "reason"), list(FAILING.values()), ids=list(FAILING))
def test_bad_content_fails_processing_with_a_readable_reason(
    client, world, container, evidence_id, name, data, reason
):
    answer = put_raw(client, world["customer"], evidence_id, name, data)
    assert answer.status_code == 201, answer.text
    file_id = answer.json()["data"]["file"]["id"]
    limits = Limits(max_zip_entries=1000, max_unzipped_bytes=64 * 1024 * 1024)
    [outcome] = process_all(container, limits)
    assert outcome.type == "evidence.processing_failed", outcome.data
    assert reason in outcome.data["reason"]
    shown = client.get(f"{API}/files/{file_id}", headers=world["customer"].headers).json()["data"]
    assert shown["status"] == "failed" and reason in shown["statusReason"]
    assert shown["wordCount"] is None
    # the upload itself stays downloadable for the people fixing it
    assert (
        client.get(f"{API}/files/{file_id}/content", headers=world["customer"].headers).status_code
        == 200
    )


def test_declared_type_mismatch_is_flagged_not_fatal(client, world, container, evidence_id):
    answer = put_raw(
        client, world["customer"], evidence_id, "policy.pdf", corpus.pdf(1), "image/png"
    )
    file_id = answer.json()["data"]["file"]["id"]
    [outcome] = process_all(container)
    assert outcome.type == "evidence.processed"
    assert "declared as image/png" in outcome.data["typeMismatch"]
    shown = client.get(f"{API}/files/{file_id}", headers=world["customer"].headers).json()["data"]
    assert shown["typeMismatch"] is True and shown["detectedType"] == "application/pdf"


def test_html_with_script_keeps_text_only_and_downloads_inert(
    client, world, container, evidence_id
):
    answer = put_raw(
        client, world["customer"], evidence_id, "review.html", corpus.HTML_WITH_SCRIPT, "text/html"
    )
    file_id = answer.json()["data"]["file"]["id"]
    [outcome] = process_all(container)
    assert outcome.type == "evidence.processed"
    text = client.get(f"{API}/files/{file_id}/text", headers=world["customer"].headers).json()[
        "data"
    ]["text"]
    assert "Quarterly access review completed" in text
    assert "fetch" not in text and "cookie" not in text and "alert" not in text and "<" not in text
    download = client.get(f"{API}/files/{file_id}/content", headers=world["customer"].headers)
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in download.headers["content-security-policy"]


def test_slow_files_fail_on_the_time_limit(client, world, container, evidence_id):
    put_raw(client, world["customer"], evidence_id, "big.pdf", corpus.pdf(400))
    [outcome] = process_all(container, Limits(timeout_seconds=0.05))
    assert outcome.type == "evidence.processing_failed"
    assert "longer than 0.05 seconds" in outcome.data["reason"]


def test_page_limit(client, world, container, evidence_id):
    put_raw(client, world["customer"], evidence_id, "long.pdf", corpus.pdf(30))
    [outcome] = process_all(container, Limits(max_pages=20))
    assert outcome.type == "evidence.processing_failed"
    assert "30 pages; the limit is 20" in outcome.data["reason"]


def _date_after_the_file() -> bytes:
    body, _ = multipart("a.txt", b"text", "text/plain")
    # the date field arrives after the file, as browsers may order it
    return body.replace(
        f"--{BOUNDARY}--".encode(),
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="effectiveDate"\r\n\r\n'
        f"30/06/2026\r\n--{BOUNDARY}--".encode(),
    )


FORM = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
# id: (body, headers, status, code, the field the first error detail names or None)
REFUSED_FORMS = {
    "unknown-form-field": (
        multipart("a.txt", b"text", fields={"owner": "someone-else"})[0], FORM, 400,
        "validation_error", None,
    ),
    "cut-off-body": (
        multipart("a.txt", b"text that never ends", close=False)[0], FORM, 400,
        "validation_error", None,
    ),
    "not-multipart": (
        b"just bytes", {"Content-Type": "text/plain"}, 415, "unsupported_media_type", None,
    ),
    "bad-effective-date-after-the-file": (
        _date_after_the_file(), FORM, 400, "validation_error", "effectiveDate",
    ),
}


@pytest.mark.parametrize(
    ("body", "headers", "status", "code", "field"), list(REFUSED_FORMS.values()),
    ids=list(REFUSED_FORMS),
)
def test_bad_form_bodies_are_refused_and_leave_nothing(
    client, world, container, evidence_id, body, headers, status, code, field
):
    answer = client.post(
        f"{API}/evidence/{evidence_id}/files",
        content=body,
        headers={**world["customer"].headers, **headers},
    )
    assert_clean(client, container, answer, status, code)
    if field is not None:
        assert answer.json()["error"]["details"][0]["field"] == field


# -- the size limit ------------------------------------------------------------------------
LIMIT = 256 * 1024


@pytest.fixture
def small(tmp_path, database_url) -> Iterator[tuple]:
    c = bootstrap(make_settings(tmp_path, database_url, max_upload_bytes=LIMIT))
    try:
        world = seed_world(c)
        with TestClient(create_app(c), raise_server_exceptions=False) as client:
            yield client, c, world, new_evidence(c, world["customer"], world.project_a)
    finally:
        c.close()


def _chunked(data: bytes, size: int = 32 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("send", ["raw", "multipart"])
def test_over_the_limit_is_413_and_leaves_nothing(small, framing, send):
    client, c, world, evidence_id = small
    data = b"x" * (LIMIT + 1)
    if send == "raw":
        url, headers, body = (
            f"{API}/evidence/{evidence_id}/files/raw?filename=big.txt",
            {"Content-Type": "text/plain"},
            data,
        )
    else:
        body, headers = multipart("big.txt", data, "text/plain")
        url = f"{API}/evidence/{evidence_id}/files"
    content = body if framing == "content-length" else _chunked(body)
    answer = client.request(
        "POST" if send == "multipart" else "PUT",
        url,
        content=content,
        headers={**world["customer"].headers, **headers},
    )
    assert_clean(client, c, answer, 413, "payload_too_large")
    # exactly at the limit is fine, and the server keeps serving
    ok = client.put(
        f"{API}/evidence/{evidence_id}/files/raw?filename=max.txt",
        content=b"y" * LIMIT,
        headers={**world["customer"].headers, "Content-Type": "text/plain"},
    )
    assert ok.status_code == 201
    assert file_rows(c) == 1


def test_ordinary_json_routes_keep_the_small_body_limit(small):
    client, c, world, evidence_id = small
    answer = client.patch(
        f"{API}/evidence/{evidence_id}",
        headers=world["customer"].headers,
        content=b'{"description": "' + b"x" * (2 * 1024 * 1024) + b'"}',
    )
    assert answer.status_code == 413


def test_legacy_encoded_csv_is_accepted_and_read(client, world, container, evidence_id):
    data = "Benutzer;Rolle;Prüfung\nJosé;admin;bestätigt\n".encode("cp1252")
    answer = put_raw(client, world["customer"], evidence_id, "export.csv", data, "text/csv")
    assert answer.status_code == 201, answer.text
    file_id = answer.json()["data"]["file"]["id"]
    [outcome] = process_all(container)
    assert outcome.type == "evidence.processed"
    text = client.get(f"{API}/files/{file_id}/text", headers=world["customer"].headers).json()
    assert "José;admin;bestätigt" in text["data"]["text"]


def test_the_hold_out_corpus_end_to_end(client, world, container, evidence_id):
    """Every file of the hold-out set: valid ones (and HTML, whose scripts are dropped from
    the text) are processed, the rest refused (4xx) or failed in processing, and the
    server answers throughout."""
    outcomes: dict[str, str] = {}
    ids: dict[str, str] = {}
    for name, data in corpus.hold_out().items():
        answer = put_raw(client, world["customer"], evidence_id, name, data)
        if answer.status_code == 201:
            ids[answer.json()["data"]["file"]["id"]] = name
        else:
            assert 400 <= answer.status_code < 500, (name, answer.text)
            outcomes[name] = str(answer.status_code)
    limits = Limits(max_zip_entries=1000, max_unzipped_bytes=64 * 1024 * 1024)
    for event in process_all(container, limits):
        outcomes[ids[event.data["fileId"]]] = event.type.removeprefix("evidence.")
    for name in corpus.hold_out():
        expected = "processed" if name.startswith("valid.") or name == "script.html" else None
        assert outcomes[name] == expected if expected else outcomes[name] != "processed", (
            name,
            outcomes[name],
        )
    assert client.get("/healthz").status_code == 200
