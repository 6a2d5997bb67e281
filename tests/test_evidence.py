"""Evidence metadata and its review workflow:

pending → in_review → approved | rejected; editing rejected evidence returns it to pending;
auditors, managers and admins decide, never on their own evidence; each decision is kept.
"""

from __future__ import annotations

import re

import pytest

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def code_of(response) -> str:
    return response.json()["error"]["code"]


def add(client, world, who="customer", project=None, **body):
    response = client.post(f"/api/v1/projects/{project or world.project_a}/evidence", headers=world[who].headers,
                           json={"title": "Access review Q3", "controlId": "AC-2", **body})
    assert response.status_code == 201, response.text
    return response.json()["data"]


def submit(client, world, evidence_id, who="customer"):
    return client.post(f"/api/v1/evidence/{evidence_id}/submit", headers=world[who].headers)


def review(client, world, evidence_id, who="auditor", decision="approved", comment="complete"):
    return client.post(f"/api/v1/evidence/{evidence_id}/review", headers=world[who].headers,
                       json={"decision": decision, "comment": comment})


def get(client, world, evidence_id, who="admin"):
    return client.get(f"/api/v1/evidence/{evidence_id}", headers=world[who].headers)


def test_create_read_update_delete(client, world):
    item = add(client, world, description="Exported <em>from IdP</em><img src=x onerror=alert(1)>",
               effectiveDate="2026-01-01", expiresAt="2027-01-01")
    assert item["status"] == "pending" and item["qualityScore"] is None and item["version"] == 1
    assert "onerror" not in item["description"]
    assert item["createdBy"] == str(world["customer"].user_id)
    assert (item["effectiveDate"], item["expiresAt"]) == ("2026-01-01", "2027-01-01")
    for key in ("createdAt", "updatedAt"):
        assert ISO_Z.match(item[key]), item[key]
    assert get(client, world, item["id"], "viewer").json()["data"]["title"] == "Access review Q3"

    edited = client.patch(f"/api/v1/evidence/{item['id']}", headers=world["customer"].headers,
                          json={"title": "Access review Q3 (signed)", "controlId": "AC-2(1)"})
    assert edited.status_code == 200
    assert (edited.json()["data"]["title"], edited.json()["data"]["version"]) == ("Access review Q3 (signed)", 2)

    assert client.delete(f"/api/v1/evidence/{item['id']}", headers=world["customer"].headers).status_code == 200
    assert get(client, world, item["id"]).status_code == 404


def test_listing_filters_and_orders(client, world):
    first = add(client, world, title="First", controlId="AC-1")
    second = add(client, world, title="Second", controlId="AC-2")
    submit(client, world, second["id"])
    url = f"/api/v1/projects/{world.project_a}/evidence"
    headers = world["viewer"].headers
    newest_first = [e["id"] for e in client.get(url, headers=headers).json()["data"]["items"]]
    assert newest_first == [second["id"], first["id"]]
    in_review = client.get(url, headers=headers, params={"status": "in_review"}).json()["data"]["items"]
    assert [e["id"] for e in in_review] == [second["id"]]
    by_control = client.get(url, headers=headers, params={"controlId": "AC-1"}).json()["data"]["items"]
    assert [e["id"] for e in by_control] == [first["id"]]
    titles = client.get(url, headers=headers, params={"sort": "title", "order": "asc"}).json()["data"]["items"]
    assert [e["title"] for e in titles] == ["First", "Second"]


def test_full_workflow_keeps_every_decision(client, container, world):
    item = add(client, world)
    evidence_id = item["id"]
    assert submit(client, world, evidence_id).json()["data"]["status"] == "in_review"

    rejected = review(client, world, evidence_id, decision="rejected", comment="Missing the sign-off page.")
    assert rejected.status_code == 200, rejected.text
    outcome = rejected.json()["data"]
    assert outcome["evidence"]["status"] == "rejected"
    assert outcome["review"]["decision"] == "rejected"
    assert outcome["review"]["reviewerId"] == str(world["auditor"].user_id)

    # Editing rejected evidence sends it back to pending; it is then resubmitted.
    edited = client.patch(f"/api/v1/evidence/{evidence_id}", headers=world["customer"].headers,
                          json={"description": "Now with the sign-off page."})
    assert edited.json()["data"]["status"] == "pending"
    assert submit(client, world, evidence_id).json()["data"]["status"] == "in_review"
    approved = review(client, world, evidence_id, who="manager", decision="approved", comment="")
    assert approved.status_code == 200 and approved.json()["data"]["evidence"]["status"] == "approved"

    history = client.get(f"/api/v1/evidence/{evidence_id}/reviews", headers=world["viewer"].headers)
    records = history.json()["data"]["items"]
    assert [(r["decision"], r["reviewerId"], r["comment"]) for r in records] == [
        ("rejected", str(world["auditor"].user_id), "Missing the sign-off page."),
        ("approved", str(world["manager"].user_id), ""),
    ]
    assert all(ISO_Z.match(r["createdAt"]) for r in records)


def test_rejected_evidence_can_be_resubmitted_without_edits(client, world):
    item = add(client, world)
    submit(client, world, item["id"])
    review(client, world, item["id"], decision="rejected", comment="Blurry.")
    assert submit(client, world, item["id"]).json()["data"]["status"] == "in_review"


@pytest.mark.parametrize("state", ["in_review", "approved"])
def test_evidence_past_pending_cannot_be_edited_or_resubmitted(client, world, state):
    item = add(client, world)
    submit(client, world, item["id"])
    if state == "approved":
        review(client, world, item["id"])
    edit = client.patch(f"/api/v1/evidence/{item['id']}", headers=world["customer"].headers, json={"title": "x"})
    assert edit.status_code == 409 and code_of(edit) == "conflict"
    again = submit(client, world, item["id"])
    assert again.status_code == 409
    assert get(client, world, item["id"]).json()["data"]["status"] == state


def test_only_evidence_in_review_can_be_decided(client, world):
    item = add(client, world)
    pending = review(client, world, item["id"])
    assert pending.status_code == 409
    submit(client, world, item["id"])
    assert review(client, world, item["id"]).status_code == 200
    twice = review(client, world, item["id"], decision="rejected", comment="changed my mind")
    assert twice.status_code == 409
    assert len(client.get(f"/api/v1/evidence/{item['id']}/reviews", headers=world["admin"].headers)
               .json()["data"]["items"]) == 1


def test_nobody_reviews_their_own_evidence(client, world):
    for who in ("manager", "admin"):
        item = add(client, world, who=who, title=f"by {who}")
        assert submit(client, world, item["id"], who=who).status_code == 200
        own = review(client, world, item["id"], who=who)
        assert own.status_code == 403 and code_of(own) == "forbidden", who
        assert get(client, world, item["id"]).json()["data"]["status"] == "in_review"
        assert review(client, world, item["id"], who="auditor").status_code == 200


def test_only_auditors_managers_and_admins_decide(client, world):
    item = add(client, world, who="manager")
    submit(client, world, item["id"], who="manager")
    for who in ("customer", "viewer"):
        response = review(client, world, item["id"], who=who)
        assert response.status_code == 403, who
    assert review(client, world, item["id"], who="admin").status_code == 200


def test_a_rejection_needs_a_comment(client, world):
    item = add(client, world)
    submit(client, world, item["id"])
    for comment in ("", "   ", "<script>alert(1)</script>"):
        response = review(client, world, item["id"], decision="rejected", comment=comment)
        assert response.status_code == 400 and code_of(response) == "validation_error", comment
    assert get(client, world, item["id"]).json()["data"]["status"] == "in_review"
    assert client.get(f"/api/v1/evidence/{item['id']}/reviews", headers=world["admin"].headers).json()["data"]["items"] == []


def test_customers_edit_only_their_own_evidence(client, world, container):
    mine = add(client, world, who="customer")
    theirs = add(client, world, who="manager", title="Manager's upload")
    customer = world["customer"].headers
    denied = client.patch(f"/api/v1/evidence/{theirs['id']}", headers=customer, json={"title": "hijacked"})
    assert denied.status_code == 403
    assert client.delete(f"/api/v1/evidence/{theirs['id']}", headers=customer).status_code == 403
    assert submit(client, world, theirs["id"], who="customer").status_code == 403
    assert client.patch(f"/api/v1/evidence/{mine['id']}", headers=customer, json={"title": "mine"}).status_code == 200
    # Managers edit anyone's evidence in their project.
    assert client.patch(f"/api/v1/evidence/{mine['id']}", headers=world["manager"].headers,
                        json={"title": "tidied"}).status_code == 200
    assert get(client, world, theirs["id"]).json()["data"]["title"] == "Manager's upload"


def test_viewers_and_auditors_do_not_create_or_edit(client, world):
    item = add(client, world)
    url = f"/api/v1/projects/{world.project_a}/evidence"
    for who in ("viewer", "auditor"):
        assert client.post(url, headers=world[who].headers, json={"title": "x"}).status_code == 403, who
        assert client.patch(f"/api/v1/evidence/{item['id']}", headers=world[who].headers,
                            json={"title": "x"}).status_code == 403, who


def test_quality_score_override_only_by_reviewers(client, world):
    item = add(client, world)
    url = f"/api/v1/evidence/{item['id']}"
    for who in ("customer", "viewer"):
        response = client.patch(url, headers=world[who].headers, json={"qualityScore": 99})
        assert response.status_code == 403, who
    submit(client, world, item["id"])
    # Reviewers may override the score even while the evidence is in review.
    for who, score in (("auditor", 72.5), ("manager", 80), ("admin", 0)):
        response = client.patch(url, headers=world[who].headers, json={"qualityScore": score})
        assert response.status_code == 200, (who, response.text)
        assert response.json()["data"]["qualityScore"] == score
        assert response.json()["data"]["status"] == "in_review"
    for bad in (-1, 100.5, "high"):
        assert client.patch(url, headers=world["auditor"].headers, json={"qualityScore": bad}).status_code == 400


def test_archived_project_refuses_new_evidence(client, world):
    existing = add(client, world)
    client.patch(f"/api/v1/projects/{world.project_a}", headers=world["admin"].headers, json={"status": "archived"})
    response = client.post(f"/api/v1/projects/{world.project_a}/evidence", headers=world["customer"].headers,
                           json={"title": "too late"})
    assert response.status_code == 409 and code_of(response) == "conflict"
    assert get(client, world, existing["id"]).status_code == 200  # what was there stays readable


def test_stale_if_match_is_a_version_conflict(client, world):
    item = add(client, world)
    url = f"/api/v1/evidence/{item['id']}"
    headers = {**world["customer"].headers, "If-Match": "1"}
    assert client.patch(url, headers=headers, json={"title": "v2"}).status_code == 200
    stale = client.patch(url, headers=headers, json={"title": "lost"})
    assert stale.status_code == 409 and code_of(stale) == "version_conflict"
    assert get(client, world, item["id"]).json()["data"]["title"] == "v2"


def test_null_for_a_required_field_is_400_not_500(client, world):
    item = add(client, world)
    url = f"/api/v1/evidence/{item['id']}"
    for field in ("title", "description"):
        response = client.patch(url, headers=world["customer"].headers, json={field: None})
        assert response.status_code == 400, (field, response.text)
    assert get(client, world, item["id"]).json()["data"]["version"] == 1


def test_dates_must_be_in_order(client, world):
    response = client.post(f"/api/v1/projects/{world.project_a}/evidence", headers=world["customer"].headers,
                           json={"title": "x", "effectiveDate": "2026-02-01", "expiresAt": "2026-01-01"})
    assert response.status_code == 400
    item = add(client, world, effectiveDate="2026-02-01")
    later = client.patch(f"/api/v1/evidence/{item['id']}", headers=world["customer"].headers,
                         json={"expiresAt": "2026-01-01"})
    assert later.status_code == 400


def test_evidence_in_invisible_projects_is_404(client, world):
    hidden = add(client, world, who="admin", project=world.project_b, title="in B")
    for who in ("viewer", "customer", "auditor", "manager"):
        assert get(client, world, hidden["id"], who).status_code == 404, who
        assert client.get(f"/api/v1/evidence/{hidden['id']}/reviews", headers=world[who].headers).status_code == 404
    assert client.get(f"/api/v1/evidence/{hidden['id']}", headers=world.outsider.headers).status_code == 404
    listing = client.get(f"/api/v1/projects/{world.project_b}/evidence", headers=world["viewer"].headers)
    assert listing.status_code == 404


def test_approved_evidence_is_deleted_only_by_admins(client, world):
    item = add(client, world)
    submit(client, world, item["id"])
    review(client, world, item["id"])
    assert client.delete(f"/api/v1/evidence/{item['id']}", headers=world["customer"].headers).status_code == 409
    assert client.delete(f"/api/v1/evidence/{item['id']}", headers=world["manager"].headers).status_code == 409
    assert client.delete(f"/api/v1/evidence/{item['id']}", headers=world["admin"].headers).status_code == 200


def test_two_reviewers_deciding_at_once_leave_exactly_one_decision(client, container, world):
    import threading
    import uuid

    from studio.domains.evidence.schemas import Decision, ReviewCreate
    from studio.errors import AppError

    item = add(client, world)
    submit(client, world, item["id"])
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def decide(role: str, decision: Decision) -> None:
        barrier.wait()
        try:
            container.evidence.review(world[role].principal, uuid.UUID(item["id"]),
                                      ReviewCreate(decision=decision, comment="racing"))
            outcomes.append("ok")
        except AppError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=decide, args=("auditor", Decision.APPROVED)),
               threading.Thread(target=decide, args=("manager", Decision.REJECTED))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) in (["conflict", "ok"], ["ok", "version_conflict"]), outcomes
    records = client.get(f"/api/v1/evidence/{item['id']}/reviews", headers=world["admin"].headers).json()["data"]["items"]
    assert len(records) == 1
    assert get(client, world, item["id"]).json()["data"]["status"] == records[0]["decision"]
