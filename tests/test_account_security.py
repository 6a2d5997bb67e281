"""Account security: passwords checked for strength wherever one is set, CSRF tokens bound to
their session, login throttling that a stranger cannot turn into a lockout of a device its
user signed in from, and names made only of invisible characters refused like empty ones."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError
from starlette.testclient import TestClient

from studio.domains.auth.schemas import ApiTokenCreate
from studio.domains.evidence.schemas import EvidenceCreate, EvidenceUpdate
from studio.domains.frameworks.schemas import FrameworkDocument
from studio.domains.projects.schemas import ProjectCreate, ProjectUpdate
from studio.domains.users.schemas import UserCreate, UserUpdate
from studio.validation import Name
from tests.conftest import TEST_PASSWORD

API = "/api/v1"
STRONG = "granite walrus mandolin 71"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert body["success"] is False, body
    error: dict[str, Any] = body["error"]
    return error


def field_messages(response: Any) -> dict[str, str]:
    return {d["field"]: d["message"] for d in error_of(response)["details"]}


def csrf_of(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


def web_login(client: TestClient, email: str, password: str = TEST_PASSWORD, **kw: Any) -> Any:
    page = client.get("/login", **kw)
    assert page.status_code == 200
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf": csrf_of(page.text)}, **kw)


def web_client(app: Any) -> TestClient:
    return TestClient(app, raise_server_exceptions=False, follow_redirects=False)


def replace_cookie(client: TestClient, name: str, value: str) -> None:
    for cookie in list(client.cookies.jar):
        if cookie.name == name:
            client.cookies.delete(name, domain=cookie.domain, path=cookie.path)
    client.cookies.set(name, value)


# == 7. Names made only of invisible characters ================================================
INVISIBLE = {
    "zero-width space": "\u200b",
    "zero-width non-joiner": "\u200c",
    "zero-width joiner": "\u200d",
    "word joiner": "\u2060",
    "byte order mark": "\ufeff",
    "soft hyphen": "\u00ad",
    "left-to-right mark": "\u200e",
    "invisible separator": "\u2063",
    "hangul filler": "\u3164",
    "braille blank": "\u2800",
    "variation selector": "\ufe0f",
    "mongolian vowel separator": "\u180e",
    "combining grapheme joiner": "\u034f",
    "tag latin a": "\U000e0041",
    "mixed with spaces": " \u200b \u2060\u00a0\ufeff ",
}


@pytest.mark.parametrize("text", list(INVISIBLE.values()), ids=list(INVISIBLE))
def test_invisible_only_names_are_refused_by_every_schema(text):
    three = text * 3
    with pytest.raises(ValidationError):
        TypeAdapter(Name).validate_python(three)
    cases = [
        (ProjectCreate, {"name": three, "framework": "SOC 2"}),
        (ProjectCreate, {"name": "Fine", "framework": three}),
        (ProjectUpdate, {"name": three}),
        (EvidenceCreate, {"title": three}),
        (EvidenceUpdate, {"title": three}),
        (UserCreate, {"email": "x@one.example", "name": three, "role": "viewer", "password": STRONG}),
        (UserUpdate, {"name": three}),
        (ApiTokenCreate, {"name": three}),
        (FrameworkDocument, {"framework": {"name": three}, "controls": [{"ref": "A", "title": "T"}]}),
        (FrameworkDocument, {"framework": {"name": "F"}, "controls": [{"ref": "A", "title": three}]}),
        (FrameworkDocument, {"framework": {"name": "F", "version": three},
                             "controls": [{"ref": "A", "title": "T"}]}),
    ]
    for model, data in cases:
        with pytest.raises(ValidationError):
            model.model_validate(data)


@pytest.mark.parametrize("text", ["\u200b\u200b", "\u2060\ufeff\u00ad", "\U000e0041\U000e0042"])
def test_invisible_only_names_are_400_on_the_api(client, world, text):
    admin = world["admin"].headers
    cases = [
        ("POST", f"{API}/projects", {"name": text, "framework": "SOC 2"}, "name"),
        ("PATCH", f"{API}/projects/{world.project_a}", {"name": text}, "name"),
        ("POST", f"{API}/projects/{world.project_a}/evidence", {"title": text}, "title"),
        ("POST", f"{API}/users", {"email": "z@one.example", "name": text, "role": "viewer",
                                  "password": STRONG}, "name"),
        ("POST", f"{API}/tokens", {"name": text}, "name"),
    ]
    for method, url, body, field in cases:
        response = client.request(method, url, headers=admin, json=body)
        assert response.status_code == 400, (url, response.text)
        assert error_of(response)["code"] == "validation_error"
        assert field_messages(response)[field] == "must contain at least one visible character"
    document = {"framework": {"name": "Ours"}, "controls": [{"ref": "A1", "title": text}]}
    imported = client.post(f"{API}/frameworks/import", headers=admin,
                           files={"file": ("f.json", json.dumps(document).encode(), "application/json")})
    assert imported.status_code == 400, imported.text


def test_visible_names_keep_their_joiners_and_lose_invisible_edges(client, world):
    admin = world["admin"].headers
    emoji = client.post(f"{API}/projects", headers=admin,
                        json={"name": "\U0001f469\u200d\U0001f4bb team", "framework": "SOC 2"})
    assert emoji.status_code == 201 and emoji.json()["data"]["name"] == "\U0001f469\u200d\U0001f4bb team"
    padded = client.post(f"{API}/projects", headers=admin,
                         json={"name": "\u200bProject Z\u2060\ufeff", "framework": "SOC 2"})
    assert padded.status_code == 201 and padded.json()["data"]["name"] == "Project Z"
    heart = client.post(f"{API}/projects", headers=admin,
                        json={"name": "Team \u2764\ufe0f", "framework": "SOC 2"})
    assert heart.status_code == 201 and heart.json()["data"]["name"] == "Team \u2764\ufe0f"
