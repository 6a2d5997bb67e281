"""The whole flow through the real consumers: import a framework, upload a PDF, and the
processed evidence ends with control suggestions, a quality score and a compliance score."""

from __future__ import annotations

import uuid

import pytest
from starlette.testclient import TestClient

from studio.app import create_app
from studio.bootstrap import bootstrap
from studio.cli.demo import CATALOG
from studio.domains.projects.schemas import MemberAdd, ProjectCreate
from studio.permissions import ProjectRole
from tests import corpus
from tests.conftest import make_settings, seed_world

API = "/api/v1"
POLICY = [
    "Account management procedure. User accounts are requested through the service desk, "
    "approved by the account owner's manager and created by the identity team.",
    "Accounts are reviewed every quarter; inactive accounts are disabled after 90 days and "
    "removed after 180 days. Privileged accounts need a second approval.",
]


@pytest.fixture
def pipeline(tmp_path, database_url, monkeypatch):
    # The statistical embedder: this is about the flow, and the neural model's accuracy has
    # its own evaluation (tests/test_ai_evaluation.py); embedding a catalog with it is slow.
    monkeypatch.setenv("STUDIO_AI_EMBEDDER", "statistical")
    c = bootstrap(make_settings(tmp_path, database_url))
    world = seed_world(c)
    with TestClient(create_app(c), raise_server_exceptions=False) as client:
        yield c, client, world
    c.close()


def test_uploaded_pdf_ends_with_suggestions_quality_and_score(pipeline):
    c, client, world = pipeline
    c.frameworks.import_file(None, CATALOG.name, CATALOG.read_bytes(), key="nist-moderate",
                             name="NIST SP 800-53 rev5 MODERATE")
    admin = world["admin"].principal
    project = c.projects.create(admin, ProjectCreate(name="FedRAMP", framework="nist-moderate"))
    project_id = uuid.UUID(project["id"])
    for role in ("customer", "auditor"):
        c.projects.add_member(admin, project_id,
                              MemberAdd(userId=world[role].user_id, role=ProjectRole(role)))
    customer, auditor = world["customer"].headers, world["auditor"].headers

    created = client.post(f"{API}/projects/{project_id}/evidence", headers=customer,
                          json={"title": "Account management procedure", "controlId": "AC-2"})
    assert created.status_code == 201, created.text
    evidence_id = created.json()["data"]["id"]
    uploaded = client.put(f"{API}/evidence/{evidence_id}/files/raw", headers={
        **customer, "Content-Type": "application/pdf"}, params={"filename": "account-management.pdf"},
        content=corpus.pdf(POLICY))
    assert uploaded.status_code == 201, uploaded.text
    file_id = uploaded.json()["data"]["file"]["id"]

    c.dispatcher.drain(timeout=120)  # processor, then analyzer, then the score

    shown = client.get(f"{API}/files/{file_id}", headers=customer).json()["data"]
    assert shown["status"] == "processed" and shown["pageCount"] == 2
    analysis = client.get(f"{API}/evidence/{evidence_id}/analysis", headers=auditor).json()["data"]
    assert analysis["status"] == "analyzed", analysis
    refs = [s["controlRef"] for s in analysis["suggestions"]]
    assert "AC-2" in refs, refs  # an account management procedure supports account management
    assert all(s["matchedSentences"] for s in analysis["suggestions"])
    assert 0 <= analysis["qualityScore"] <= 100
    assert {signal["signal"] for signal in analysis["qualityBreakdown"]} >= {"relevance", "freshness"}
    assert all(signal["explanation"] for signal in analysis["qualityBreakdown"])

    assert client.get(f"{API}/projects/{project_id}/score", headers=customer).json()["data"][
        "score"] == 0  # nothing approved yet
    client.post(f"{API}/evidence/{evidence_id}/submit", headers=customer)
    decided = client.post(f"{API}/evidence/{evidence_id}/review", headers=auditor,
                          json={"decision": "approved", "comment": "complete"})
    assert decided.status_code == 200, decided.text
    c.dispatcher.drain(timeout=60)
    score = client.get(f"{API}/projects/{project_id}/score", headers=customer).json()["data"]
    assert 0 < score["score"] < 100
    statuses = client.get(f"{API}/projects/{project_id}/controls", headers=customer).json()["data"]
    assert next(s for s in statuses if s["label"] == "AC-2")["status"] == "covered"

    # Accepting another suggested control links the evidence to it, and the score counts it.
    other = next(s for s in analysis["suggestions"] if s["controlRef"] != "AC-2")
    accepted = client.post(f"{API}/ai/suggestions/{other['id']}/decision", headers=customer,
                           json={"decision": "accepted"})
    assert accepted.status_code == 200, accepted.text
    c.dispatcher.drain(timeout=60)
    statuses = client.get(f"{API}/projects/{project_id}/controls", headers=customer).json()["data"]
    assert next(s for s in statuses if s["label"] == other["controlRef"])["status"] == "covered"
    assert client.get(f"{API}/projects/{project_id}/score", headers=customer).json()["data"][
        "score"] > score["score"]
