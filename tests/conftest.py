"""Shared fixtures: a migrated database per test on SQLite and PostgreSQL, a bootstrapped
container, the ASGI app, and a seeded organization with a user per role.

PostgreSQL, Redis and NATS are found at their default local addresses, or wherever
STUDIO_TEST_POSTGRES_URL / STUDIO_TEST_REDIS_URL / STUDIO_TEST_NATS_URL point. Each is
probed once per session; a test that needs one that does not answer is skipped, or fails
when CI is set (true/1/yes). Tests get a service's URL only through `service_url`."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool
from starlette.testclient import TestClient

from studio.app import create_app
from studio.bootstrap import Container, bootstrap
from studio.db.migrate import upgrade
from studio.domains.projects.schemas import MemberAdd, ProjectCreate
from studio.domains.users.repository import OrganizationRepository, load_principal
from studio.domains.users.service import create_organization, create_user
from studio.permissions import ProjectRole, Role
from studio.principal import AuthInfo, Principal
from studio.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEST_PASSWORD = "correct horse battery staple"


# -- services --------------------------------------------------------------------------
@dataclass(frozen=True)
class Service:
    label: str
    variable: str
    default: str


SERVICES = {
    "postgres": Service("PostgreSQL", "STUDIO_TEST_POSTGRES_URL",
                        "postgresql://postgres@127.0.0.1:5432/postgres"),
    "redis": Service("Redis", "STUDIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "nats": Service("NATS", "STUDIO_TEST_NATS_URL", "nats://127.0.0.1:4222"),
}
DEFAULT_PORTS = {"postgres": 5432, "redis": 6379, "nats": 4222}
CONNECT_TIMEOUT = 2.0


def service_url(name: str) -> str:
    """The URL of a service the calling test needs ("postgres", "redis" or "nats").

    Skips the test when the service does not answer; with CI set, fails it instead."""
    url, problem = _discover(name)
    if problem is None:
        return url
    service = SERVICES[name]
    reason = (f"{service.label} did not answer at {_redacted(url)} ({problem}); "
              f"start it there or set {service.variable}")
    if IN_CI:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@functools.cache
def _discover(name: str) -> tuple[str, str | None]:
    """(url, None) when the service answers, else (url, why not); probed once per session."""
    url = os.environ.get(SERVICES[name].variable) or SERVICES[name].default
    try:
        _PROBES[name](url)
    except Exception as exc:  # any failure to answer is a reason to skip
        return url, _one_line(exc)
    return url, None


def _tcp(url: str, name: str) -> None:
    parts = urlsplit(url)
    if parts.hostname:  # a PostgreSQL URL may name a Unix socket directory instead
        with socket.create_connection((parts.hostname, parts.port or DEFAULT_PORTS[name]),
                                      timeout=CONNECT_TIMEOUT):
            pass


def _probe_postgres(url: str) -> None:
    import psycopg

    _tcp(url, "postgres")
    conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo, connect_timeout=int(CONNECT_TIMEOUT)) as conn:
        conn.execute("SELECT 1").fetchone()


def _probe_redis(url: str) -> None:
    import redis

    _tcp(url, "redis")
    client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT,
                                  socket_timeout=CONNECT_TIMEOUT)
    try:
        if not client.ping():
            raise ConnectionError("PING was not answered")
    finally:
        client.close()


_PROBES = {
    "postgres": _probe_postgres,
    "redis": _probe_redis,
    "nats": lambda url: _tcp(url, "nats"),
}


def _one_line(exc: Exception) -> str:
    text_ = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text_[0]}" if text_ else type(exc).__name__


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


# -- databases -----------------------------------------------------------------------
@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    from studio.db.engine import make_engine

    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@functools.cache
def _postgres_admin() -> Engine:
    """Connections to the server's maintenance database, for CREATE/DROP DATABASE."""
    url = make_url(service_url("postgres")).set(drivername="postgresql+psycopg",
                                                database="postgres")
    return create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)


@contextmanager
def temporary_postgres_database(prefix: str, template: str | None = None) -> Iterator[str]:
    """A new database on the test server, empty or a copy of `template`, dropped afterwards
    even if connections to it are still open. Yields its URL. Skips without PostgreSQL."""
    server = service_url("postgres")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    with _postgres_admin().connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with _postgres_admin().connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """The name of a migrated database that each PostgreSQL test's database is copied from."""
    from studio.db.engine import make_engine

    with temporary_postgres_database("studio_tpl") as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield make_url(url).database


def make_database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "studio.db.engine"
        shutil.copy(template, path)
        yield f"sqlite:///{path}"
        return
    template_name = request.getfixturevalue("postgres_template")
    with temporary_postgres_database("studio_t", template_name) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_database_url(backend, request, tmp_path)


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "secret_key": "test-secret-key-that-is-long-enough-for-hs256-0123456789",
        # Real Argon2id, cheaper parameters: the suite hashes many passwords.
        "argon2_memory_kib": 1024,
        "argon2_time_cost": 1,
        "log_level": "WARNING",
        "rate_limit_enabled": False,
        # Consumers run inline: a test drains them (container.dispatcher.drain()) and then
        # asserts, instead of racing a background thread. Tests of the thread opt in.
        "run_workers": False,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
def container(settings: Settings) -> Iterator[Container]:
    c = bootstrap(settings)
    yield c
    c.close()


@pytest.fixture
def app(container: Container) -> Any:
    return create_app(container)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


# -- a seeded organization ------------------------------------------------------------
@dataclass
class Actor:
    role: str
    user_id: uuid.UUID
    email: str
    token: str
    principal: Principal

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


# The shared frameworks (key: name) the world's projects bind to, one control each.
SEED_FRAMEWORKS = {"nist-sp-800-53": "NIST SP 800-53", "soc-2": "SOC 2", "iso-27001": "ISO 27001"}


@dataclass
class World:
    """Two organizations; in the first, a user per role, project A (everyone a member),
    project B (no members); in the second, an admin and project C."""

    org_id: uuid.UUID
    other_org_id: uuid.UUID
    actors: dict[str, Actor]
    outsider: Actor  # admin of the other organization
    project_a: uuid.UUID
    project_b: uuid.UUID
    project_c: uuid.UUID

    def __getitem__(self, role: str) -> Actor:
        return self.actors[role]


def _actor(c: Container, user: Any, role: str) -> Actor:
    token, _ = c.tokens.issue(user["id"], user["organization_id"])
    with c.db.read() as conn:
        principal = load_principal(conn, AuthInfo(user["id"], user["organization_id"], "jwt"))
    assert principal is not None
    return Actor(role, user["id"], user["email"], token, principal)


def seed_world(c: Container) -> World:
    password_hash = c.passwords.hash(TEST_PASSWORD)
    actors: dict[str, Actor] = {}
    with c.db.write(actor="test") as uow:
        org = create_organization(uow, "Org One")
        other = create_organization(uow, "Org Two")
        users = {
            role.value: create_user(uow, org_id=org["id"], email=f"{role.value}@one.example",
                                    name=f"{role.value} one", role=role, password_hash=password_hash)
            for role in Role
        }
        outsider = create_user(uow, org_id=other["id"], email="admin@two.example", name="admin two",
                               role=Role.ADMIN, password_hash=password_hash)
    for role, user in users.items():
        actors[role] = _actor(c, user, role)
    outsider_actor = _actor(c, outsider, "admin")
    admin = actors["admin"].principal
    # A project binds only to an imported framework: the ones the projects below name, in
    # the shared catalog (as the operator's CLI imports them).
    for name in SEED_FRAMEWORKS.values():
        c.frameworks.import_file(None, "seed.csv", b"ref,title\nSEED-1,Seed control\n", name=name, version="seed")
    project_a = c.projects.create(admin, ProjectCreate(name="Project A", framework="NIST SP 800-53"))
    project_b = c.projects.create(admin, ProjectCreate(name="Project B", framework="SOC 2"))
    project_c = c.projects.create(outsider_actor.principal, ProjectCreate(name="Project C", framework="ISO 27001"))
    a_id = uuid.UUID(project_a["id"])
    for role in ("manager", "auditor", "customer", "viewer"):
        c.projects.add_member(admin, a_id, MemberAdd(userId=actors[role].user_id, role=ProjectRole(role)))
    with c.db.read() as conn:
        assert OrganizationRepository(conn).get(org["id"]) is not None
    return World(org["id"], other["id"], actors, outsider_actor, a_id, uuid.UUID(project_b["id"]),
                 uuid.UUID(project_c["id"]))


@pytest.fixture
def world(container: Container) -> World:
    return seed_world(container)
