"""The main path end to end through the HTTP API: login, project, evidence, review."""

from __future__ import annotations

from tests.conftest import TEST_PASSWORD


def test_login_create_submit_and_approve(client, world):
    login = client.post("/api/v1/auth/login", json={"email": "customer@one.example", "password": TEST_PASSWORD})
    assert login.status_code == 200, login.text
    customer = {"Authorization": f"Bearer {login.json()['data']['accessToken']}"}
    created = client.post(f"/api/v1/projects/{world.project_a}/evidence", headers=customer,
                          json={"title": "Access review Q3", "controlId": "AC-2"})
    assert created.status_code == 201, created.text
    evidence = created.json()["data"]
    assert evidence["status"] == "pending" and evidence["controlId"] == "AC-2"
    submitted = client.post(f"/api/v1/evidence/{evidence['id']}/submit", headers=customer)
    assert submitted.json()["data"]["status"] == "in_review"
    decision = client.post(f"/api/v1/evidence/{evidence['id']}/review", headers=world["auditor"].headers,
                           json={"decision": "approved", "comment": "complete"})
    assert decision.status_code == 200, decision.text
    assert decision.json()["data"]["evidence"]["status"] == "approved"
    listed = client.get(f"/api/v1/projects/{world.project_a}/evidence", headers=world["viewer"].headers)
    assert [e["status"] for e in listed.json()["data"]["items"]] == ["approved"]
