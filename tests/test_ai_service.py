"""The AI service end to end on SQLite and PostgreSQL: evidence.processed → suggestions and a
quality score visible through the API; decisions, overrides, search, bad input."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from studio.ai.consumers import EvidenceAnalyzer
from studio.ai.embedders import EmbedderStatus
from studio.ai.runtime import build_ai
from studio.ai.service import AiService
from studio.ai.vectors import SqlVectorIndex
from studio.bootstrap import Container
from studio.domains.evidence.schemas import EvidenceCreate
from studio.domains.projects.service import stream_of
from studio.settings import Settings
from tests.ai_support import FRAMEWORK, LOW_FRAMEWORK, import_catalog, need_catalog
from tests.conftest import SEED_FRAMEWORKS, make_settings

MFA_TEXT = ("Okta authentication policy exported 2024-06-02: all users require multi-factor "
            "authentication (Okta Verify push or FIDO2 key) for every sign-in to SSO applications. "
            "Administrators require phishing-resistant FIDO2 keys. Policy owner: Maria Chen.")
BACKUP_TEXT = ("Veeam backup job configuration: nightly incremental and weekly full backups of all "
               "production virtual machines, retention 35 days, copies to an immutable repository.")


@pytest.fixture
def settings(tmp_path: Any, database_url: str) -> Settings:
    # The statistical embedder: these tests are about the service, not the model's accuracy.
    return make_settings(tmp_path, database_url, ai_embedder="statistical")


@pytest.fixture
def ai(container: Container) -> AiService:
    """The AI service over the MODERATE baseline, imported and indexed; it reads the text
    from the event (`process` below plays the document service)."""
    import_catalog(container)
    service = build_ai(container.db, container.settings, evidence=container.evidence)
    service.index_framework(FRAMEWORK)
    container.ai = service
    return service


def new_evidence(c: Container, world: Any, project: uuid.UUID | None = None, role: str = "customer",
                 title: str = "Evidence") -> uuid.UUID:
    principal = world[role].principal if project is None or project == world.project_a else world["admin"].principal
    row = c.evidence.create(principal, project or world.project_a, EvidenceCreate(title=title))
    return uuid.UUID(row["id"])


def process(c: Container, service: AiService, evidence_id: uuid.UUID, project_id: uuid.UUID,
            text: str | None) -> None:
    """What the document service does, then what the dispatcher does with the event."""
    data: dict[str, Any] = {"evidenceId": str(evidence_id), "projectId": str(project_id)}
    if text is not None:
        data["text"] = text
    with c.db.write(actor="documents") as uow:
        uow.emit("evidence.processed", stream_of(project_id), data, source="documents")
    stored = uow.appended[-1]
    with c.db.write(actor="ai") as uow:
        EvidenceAnalyzer(service).handle(uow, stored)


def analysis(client: Any, world: Any, evidence_id: uuid.UUID, role: str = "auditor") -> dict[str, Any]:
    response = client.get(f"/api/v1/evidence/{evidence_id}/analysis", headers=world[role].headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def events_of(c: Container, type_: str) -> list[Any]:
    with c.db.read() as conn:
        return c.store.read(conn, types=[type_])


def test_processed_evidence_gets_suggestions_and_a_quality_score(container: Container, world: Any,
                                                                 ai: AiService, client: Any) -> None:
    evidence_id = new_evidence(container, world, title="Okta MFA policy")
    process(container, ai, evidence_id, world.project_a, MFA_TEXT)
    data = analysis(client, world, evidence_id)
    assert data["status"] == "analyzed" and data["model"].startswith("tfidf-")
    refs = [s["controlRef"] for s in data["suggestions"]]
    assert len(refs) == 5 and any(r.startswith("IA-2") for r in refs), refs
    top = data["suggestions"][0]
    assert top["status"] == "open" and top["matchedSentences"]
    assert all(sentence in MFA_TEXT for sentence in top["matchedSentences"])
    signals = {s["signal"]: s for s in data["qualityBreakdown"]}
    assert set(signals) == {"relevance", "freshness", "completeness", "specificity", "uniqueness"}
    assert all(s["explanation"].endswith(".") for s in signals.values())
    assert 0 <= data["qualityScore"] <= 100
    assert data["qualityScore"] == pytest.approx(sum(s["points"] for s in signals.values()), abs=0.3)
    shown = client.get(f"/api/v1/evidence/{evidence_id}", headers=world["auditor"].headers).json()["data"]
    assert shown["qualityScore"] == data["qualityScore"]
    assert shown["version"] == 1  # a computed score is not an edit: an If-Match in flight still holds
    analyzed = events_of(container, "evidence.analyzed")
    assert analyzed[-1].data["evidenceId"] == str(evidence_id)
    assert analyzed[-1].data["suggestions"][0]["controlRef"] == refs[0]


BAD_INPUTS = {
    "missing": (None, "no text was extracted"),
    "empty": ("", "no text was extracted"),
    "whitespace": ("  \n\t \r\n ", "no text was extracted"),
    "binary": (bytes(range(256)).decode("latin-1") * 40, "not readable"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_a_clear_status_and_the_queue_moves_on(container: Container, world: Any, ai: AiService,
                                                              client: Any, case: str) -> None:
    text, reason = BAD_INPUTS[case]
    bad = new_evidence(container, world, title="Bad")
    process(container, ai, bad, world.project_a, text)
    data = analysis(client, world, bad)
    assert data["status"] == "unavailable"
    assert data["reason"].startswith("analysis unavailable:") and reason in data["reason"]
    assert data["suggestions"] == [] and data["qualityScore"] is None
    assert events_of(container, "evidence.analyzed")[-1].data["status"] == "unavailable"
    good = new_evidence(container, world, title="Good")
    process(container, ai, good, world.project_a, BACKUP_TEXT)
    assert analysis(client, world, good)["status"] == "analyzed"


def test_huge_and_foreign_texts_are_analysed(container: Container, world: Any, ai: AiService, client: Any) -> None:
    huge = new_evidence(container, world, title="Huge log")
    line = "2024-06-11T09:14:22Z sshd[812]: Failed password for invalid user admin from 203.0.113.9\n"
    process(container, ai, huge, world.project_a, line * (10 * 1024 * 1024 // len(line)))
    data = analysis(client, world, huge)
    assert data["status"] == "analyzed" and data["suggestions"]
    french = new_evidence(container, world, title="Politique")
    process(container, ai, french, world.project_a,
            "Les sauvegardes de toutes les bases de données sont chiffrées et copiées chaque nuit "
            "vers un second centre de données. Les restaurations sont testées chaque trimestre par "
            "l'équipe d'exploitation, et les résultats sont conservés pendant deux ans.")
    data = analysis(client, world, french)
    assert data["status"] == "analyzed"
    completeness = next(s for s in data["qualityBreakdown"] if s["signal"] == "completeness")
    assert "English" in completeness["explanation"]


class FailingEmbedder:
    name = "failing"
    dim = 8

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise RuntimeError("model crashed")


def test_a_failing_model_marks_the_evidence_and_does_not_raise(container: Container, world: Any,
                                                               client: Any) -> None:
    service = AiService(container.db, lambda corpus: (FailingEmbedder(), EmbedderStatus(
        "failing", "statistical", 8, "auto"), SqlVectorIndex(container.db.engine, "failing", 8)),
        evidence=container.evidence)
    container.ai = service
    evidence_id = new_evidence(container, world)
    process(container, service, evidence_id, world.project_a, MFA_TEXT)
    data = analysis(client, world, evidence_id)
    assert data["status"] == "unavailable" and "the model failed" in data["reason"]


def test_accepting_links_the_control_and_both_decisions_are_kept(container: Container, world: Any,
                                                                 ai: AiService, client: Any) -> None:
    evidence_id = new_evidence(container, world, title="MFA")
    process(container, ai, evidence_id, world.project_a, MFA_TEXT)
    first, second = analysis(client, world, evidence_id)["suggestions"][:2]
    url = "/api/v1/ai/suggestions/{}/decision"
    assert client.post(url.format(first["id"]), json={"decision": "accepted"},
                       headers=world["viewer"].headers).status_code == 403
    assert client.post(url.format(first["id"]), json={"decision": "accepted"},
                       headers=world.outsider.headers).status_code == 404
    assert client.post(url.format(first["id"]), json={"decision": "maybe"},
                       headers=world["customer"].headers).status_code == 400
    accepted = client.post(url.format(first["id"]), json={"decision": "accepted"},
                           headers=world["customer"].headers)
    assert accepted.status_code == 200 and accepted.json()["data"]["status"] == "accepted"
    # Accepting or dismissing changes the evidence's links: auditors, who only review, may not.
    assert client.post(url.format(second["id"]), json={"decision": "dismissed"},
                       headers=world["auditor"].headers).status_code == 403
    dismissed = client.post(url.format(second["id"]), json={"decision": "dismissed"},
                            headers=world["manager"].headers)
    assert dismissed.json()["data"]["status"] == "dismissed"
    again = client.post(url.format(first["id"]), json={"decision": "dismissed"}, headers=world["customer"].headers)
    assert again.status_code == 409
    evidence = client.get(f"/api/v1/evidence/{evidence_id}", headers=world["auditor"].headers).json()["data"]
    assert evidence["controlId"] == first["controlRef"]
    linked = events_of(container, "evidence.control_linked")[-1].data
    assert linked["controlRef"] == first["controlRef"] and linked["origin"] == "suggested"
    metrics = client.get("/api/v1/ai/suggestions/metrics", headers=world["admin"].headers).json()["data"]
    assert metrics["accepted"] == 1 and metrics["decided"] == 2 and metrics["acceptanceRate"] == 0.5
    # Reanalysis replaces open suggestions and keeps the decided ones.
    process(container, ai, evidence_id, world.project_a, MFA_TEXT)
    statuses = [s["status"] for s in analysis(client, world, evidence_id)["suggestions"]]
    assert statuses.count("accepted") == 1 and statuses.count("dismissed") == 1


def test_quality_override_is_recorded_and_survives_reanalysis(container: Container, world: Any, ai: AiService,
                                                              client: Any) -> None:
    evidence_id = new_evidence(container, world)
    process(container, ai, evidence_id, world.project_a, MFA_TEXT)
    computed = analysis(client, world, evidence_id)["qualityScore"]
    url = f"/api/v1/evidence/{evidence_id}/quality-override"
    assert client.post(url, json={"score": 40, "reason": "stale"}, headers=world["customer"].headers).status_code == 403
    assert client.post(url, json={"score": 101, "reason": "x"}, headers=world["auditor"].headers).status_code == 400
    assert client.post(url, json={"score": 40, "reason": "  "}, headers=world["auditor"].headers).status_code == 400
    response = client.post(url, json={"score": 40, "reason": "screenshot predates the policy change"},
                           headers=world["auditor"].headers)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["qualityScore"] == 40 and data["computedQualityScore"] == computed
    assert data["overrides"][0]["computedScore"] == computed
    assert data["overrides"][0]["reviewerId"] == str(world["auditor"].user_id)
    shown = client.get(f"/api/v1/evidence/{evidence_id}", headers=world["auditor"].headers).json()["data"]
    assert shown["qualityScore"] == 40 and shown["version"] == 2
    process(container, ai, evidence_id, world.project_a, MFA_TEXT)
    assert analysis(client, world, evidence_id)["qualityScore"] == 40
    assert events_of(container, "evidence.quality_overridden")[-1].data["score"] == 40


def test_duplicate_text_loses_the_uniqueness_points(container: Container, world: Any, ai: AiService,
                                                    client: Any) -> None:
    first = new_evidence(container, world)
    second = new_evidence(container, world)
    process(container, ai, first, world.project_a, BACKUP_TEXT)
    process(container, ai, second, world.project_a, "  " + BACKUP_TEXT.upper())
    signal = next(s for s in analysis(client, world, second)["qualityBreakdown"] if s["signal"] == "uniqueness")
    assert signal["points"] == 0 and str(first) in signal["explanation"]


def test_search_finds_only_what_the_caller_may_see(container: Container, world: Any, ai: AiService,
                                                   client: Any) -> None:
    in_a = new_evidence(container, world, title="Backups A")
    in_b = new_evidence(container, world, project=world.project_b, title="Backups B")
    process(container, ai, in_a, world.project_a, BACKUP_TEXT)
    process(container, ai, in_b, world.project_b, BACKUP_TEXT)

    def found(role_headers: dict[str, str]) -> set[str]:
        response = client.get("/api/v1/ai/search", params={"q": "nightly backup retention"}, headers=role_headers)
        assert response.status_code == 200, response.text
        return {item["evidenceId"] for item in response.json()["data"]["items"]}

    assert found(world["customer"].headers) == {str(in_a)}
    assert found(world["admin"].headers) == {str(in_a), str(in_b)}
    assert found(world.outsider.headers) == set()
    controls = client.get("/api/v1/ai/search", params={"q": "system backup", "kind": "control", "limit": 3},
                          headers=world["viewer"].headers).json()["data"]["items"]
    assert "CP-9" in [c["controlRef"] for c in controls]
    assert client.get("/api/v1/ai/search", params={"q": "   "}, headers=world["viewer"].headers).status_code == 400
    assert client.get("/api/v1/ai/search", params={"q": "x", "kind": "users"},
                      headers=world["viewer"].headers).status_code == 400


def test_an_imported_framework_is_indexed_by_its_consumer(container: Container, world: Any,
                                                          client: Any) -> None:
    import_catalog(container)
    container.dispatcher.drain(timeout=60)
    data = client.get("/api/v1/ai/status", headers=world["viewer"].headers).json()["data"]
    # The world's projects bind to shared frameworks of one control each (tests/conftest.py).
    assert data["frameworks"] == sorted([FRAMEWORK, *SEED_FRAMEWORKS])
    assert data["vectors"] == 2 * (287 + len(SEED_FRAMEWORKS))
    controls = client.get("/api/v1/ai/search", params={"q": "system backup", "kind": "control", "limit": 3},
                          headers=world["viewer"].headers).json()["data"]["items"]
    assert "CP-9" in [c["controlRef"] for c in controls]


def test_status_says_which_model_is_active(container: Container, world: Any, ai: AiService, client: Any) -> None:
    data = client.get("/api/v1/ai/status", headers=world["viewer"].headers).json()["data"]
    assert data["kind"] == "statistical" and data["active"].startswith("tfidf-")
    assert data["preferred"] == "statistical" and data["fallbackReason"] is None
    assert data["vectors"] == 2 * 287 and FRAMEWORK in data["frameworks"]


def test_cross_framework_mapping_suggestions(container: Container, world: Any, ai: AiService, client: Any) -> None:
    import_catalog(container, need_catalog(), LOW_FRAMEWORK)
    body = {"source": LOW_FRAMEWORK, "target": FRAMEWORK}
    assert client.post("/api/v1/ai/mappings", json=body, headers=world["manager"].headers).status_code == 403
    response = client.post("/api/v1/ai/mappings", json=body, headers=world["admin"].headers)
    assert response.status_code == 201, response.text
    assert response.json()["data"]["created"] >= 100  # the low baseline is a subset of the moderate one
    items = ai.mapping_suggestions(LOW_FRAMEWORK, FRAMEWORK, limit=5000)
    pair = next(i for i in items if i["sourceRef"] == "AC-2" and i["targetRef"] == "AC-2")
    assert pair["relation"] == "equal" and pair["strength"] == 10 and pair["origin"] == "suggested"
    assert all(0 <= i["strength"] <= 10 for i in items)
    decided = client.post(f"/api/v1/ai/mappings/{pair['id']}/decision", json={"decision": "accepted"},
                          headers=world["admin"].headers)
    assert decided.json()["data"]["status"] == "accepted"
    accepted = events_of(container, "control_mapping.accepted")[-1].data
    assert accepted["source"] == {"framework": LOW_FRAMEWORK, "ref": "AC-2"}
    unknown = client.post("/api/v1/ai/mappings", json={"source": "nope", "target": FRAMEWORK},
                          headers=world["admin"].headers)
    assert unknown.status_code == 404


def test_inference_can_run_before_the_write_transaction(container: Container, world: Any, ai: AiService,
                                                        client: Any) -> None:
    evidence_id = new_evidence(container, world, title="MFA")
    with container.db.write(actor="documents") as uow:
        uow.emit("evidence.processed", stream_of(world.project_a),
                 {"evidenceId": str(evidence_id), "projectId": str(world.project_a), "text": MFA_TEXT})
    stored = uow.appended[-1]
    analyzer = EvidenceAnalyzer(ai)
    prepared = analyzer.prepare(stored)
    assert prepared is not None and prepared.error is None
    with container.db.write(actor="ai") as uow:
        analyzer.handle_prepared(uow, stored, prepared)
    refs = [s["controlRef"] for s in analysis(client, world, evidence_id)["suggestions"]]
    assert refs == [s.ref for s in prepared.suggestions]
