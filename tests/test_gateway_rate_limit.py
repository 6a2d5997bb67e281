"""Rate limits: per client IP, per principal, login per IP and per account; shared via Redis."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from tests.conftest import TEST_PASSWORD, seed_world, service_url
from tests.gateway_support import assert_envelope, ip, redis_prefix, served


def _assert_429(response, limit: int) -> None:
    assert_envelope(response, status=429, code="rate_limited")
    retry = int(response.headers["retry-after"])
    assert 1 <= retry <= 60
    assert response.headers["ratelimit-limit"] == str(limit)
    assert response.headers["ratelimit-remaining"] == "0"
    assert int(response.headers["ratelimit-reset"]) == retry


def test_per_ip_budget(tmp_path, database_url):
    with served(
        tmp_path,
        database_url,
        rate_limit_enabled=True,
        rate_limit_ip="3/minute",
        rate_limit_user="100/minute",
    ) as (container, _, client):
        world = seed_world(container)
        one, two = ip("10.0.0.1"), ip("10.0.0.2")
        answers = [
            client.get("/api/v1/projects", headers={**world["viewer"].headers, **one})
            for _ in range(3)
        ]
        assert [r.status_code for r in answers] == [200, 200, 200]
        assert [r.headers["ratelimit-remaining"] for r in answers] == ["2", "1", "0"]
        assert all(r.headers["ratelimit-limit"] == "3" for r in answers)
        # Unauthenticated requests count against the address too, and another user does
        # not get a fresh budget from the same address.
        _assert_429(client.get("/api/v1/projects", headers={**world["admin"].headers, **one}), 3)
        _assert_429(client.get("/api/v1/projects", headers=one), 3)
        assert client.get("/healthz", headers=one).status_code == 200  # probes are never limited
        assert (
            client.get("/api/v1/projects", headers={**world["viewer"].headers, **two}).status_code
            == 200
        )


def test_per_principal_budget(tmp_path, database_url):
    with served(
        tmp_path,
        database_url,
        rate_limit_enabled=True,
        rate_limit_ip="100/minute",
        rate_limit_user="3/minute",
    ) as (container, _, client):
        world = seed_world(container)
        viewer = world["viewer"].headers
        # A new address per request does not escape the user's budget...
        answers = [
            client.get("/api/v1/me", headers={**viewer, **ip(f"10.1.0.{i}")}) for i in range(4)
        ]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        _assert_429(answers[3], 3)
        # ...and one user's exhaustion does not affect another user on the same address.
        assert (
            client.get(
                "/api/v1/me", headers={**world["auditor"].headers, **ip("10.1.0.0")}
            ).status_code
            == 200
        )
        # An API token is the same principal as its owner's session.
        created = client.post("/api/v1/tokens", headers=world["admin"].headers, json={"name": "ci"})
        assert created.status_code == 201
        token = {"Authorization": f"Bearer {created.json()['data']['token']}"}
        statuses = [client.get("/api/v1/me", headers=token).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]


def test_login_limited_per_ip_and_per_account(tmp_path, database_url):
    # Known devices and the per-account-and-address tiers: tests/test_account_security.py.
    with served(tmp_path, database_url, rate_limit_enabled=True, rate_limit_login="3/minute",
                rate_limit_login_account="3/minute") as (
        container,
        _,
        client,
    ):
        seed_world(container)
        wrong = {"email": "viewer@one.example", "password": "not the password"}
        right = {"email": "viewer@one.example", "password": TEST_PASSWORD}
        first = ip("10.2.0.1")
        assert [
            client.post("/api/v1/auth/login", json=wrong, headers=first).status_code
            for _ in range(3)
        ] == [401] * 3
        # The account's budget for unknown devices is spent: even the right password from a
        # new address waits (a device that logged in before would not).
        blocked = client.post("/api/v1/auth/login", json=right, headers=ip("10.2.0.2"))
        _assert_429(blocked, 3)
        assert "login" in blocked.json()["error"]["message"]
        # A fresh e-mail from a fresh address still works.
        other = client.post(
            "/api/v1/auth/login",
            headers=ip("10.2.0.3"),
            json={"email": "auditor@one.example", "password": TEST_PASSWORD},
        )
        assert other.status_code == 200
        # One address guessing many e-mails runs out too.
        statuses = [
            client.post(
                "/api/v1/auth/login",
                headers=ip("10.2.0.4"),
                json={"email": f"u{i}@one.example", "password": "guess"},
            ).status_code
            for i in range(4)
        ]
        assert statuses == [401, 401, 401, 429]


def test_limits_are_off_when_disabled(tmp_path, database_url):
    with served(
        tmp_path,
        database_url,
        rate_limit_enabled=False,
        rate_limit_ip="1/minute",
        rate_limit_user="1/minute",
        rate_limit_login="1/minute",
    ) as (container, _, client):
        world = seed_world(container)
        assert {
            client.get("/api/v1/me", headers=world["viewer"].headers).status_code for _ in range(5)
        } == {200}


@pytest.mark.redis
def test_two_processes_share_one_budget_through_redis(tmp_path, database_url):
    redis_url = service_url("redis")
    with ExitStack() as stack:
        options = {
            "redis_url": redis_url,
            "redis_key_prefix": stack.enter_context(redis_prefix(redis_url)),
            "rate_limit_enabled": True,
            "rate_limit_ip": "100/minute",
            "rate_limit_user": "4/minute",
            "rate_limit_login": "2/minute",
        }
        c1, _, api1 = stack.enter_context(served(tmp_path / "one", database_url, **options))
        _, _, api2 = stack.enter_context(served(tmp_path / "two", database_url, **options))
        world = seed_world(c1)
        viewer = world["viewer"].headers
        statuses = [
            (api1 if i % 2 == 0 else api2).get("/api/v1/me", headers=viewer).status_code
            for i in range(5)
        ]
        assert statuses == [200, 200, 200, 200, 429]
        _assert_429(api2.get("/api/v1/me", headers=viewer), 4)
        wrong = {"email": "manager@one.example", "password": "nope"}
        logins = [
            api1.post("/api/v1/auth/login", json=wrong).status_code,
            api2.post("/api/v1/auth/login", json=wrong).status_code,
            api1.post("/api/v1/auth/login", json=wrong).status_code,
        ]
        assert logins == [401, 401, 429]


@pytest.mark.redis
def test_unreachable_redis_fails_open(tmp_path, database_url):
    # Port 1: nothing listens. Limits and cache are optimisations; the API must stay up.
    with served(
        tmp_path,
        database_url,
        redis_url="redis://127.0.0.1:1/0",
        rate_limit_enabled=True,
        rate_limit_user="1/minute",
    ) as (container, _, client):
        world = seed_world(container)
        statuses = [
            client.get("/api/v1/me", headers=world["viewer"].headers).status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 200]
