"""Shared fixtures: a migrated database per test on SQLite and (when configured) PostgreSQL,
a bootstrapped container, the ASGI app, and a seeded organization with a user per role."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
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
POSTGRES_URL = os.environ.get("STUDIO_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("STUDIO_TEST_REDIS_URL")
NATS_URL = os.environ.get("STUDIO_TEST_NATS_URL")
TEST_PASSWORD = "correct horse battery staple"


def need_service(url: str | None, name: str) -> str:
    """The service URL, or skip; in CI a missing service is a failure, not a skip."""
    if url:
        return url
    if IN_CI:
        pytest.fail(f"{name} is required in CI (set its STUDIO_TEST_*_URL)")
    pytest.skip(f"{name} not configured (set STUDIO_TEST_{name.upper()}_URL)")


# -- databases -----------------------------------------------------------------------
@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    from studio.db.engine import make_engine

    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


def _pg_admin_url(url: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/postgres"


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    url = need_service(POSTGRES_URL, "postgres")
    admin = create_engine(_pg_admin_url(url).replace("postgresql://", "postgresql+psycopg://"),
                          isolation_level="AUTOCOMMIT")
    name = f"studio_tpl_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    from studio.db.engine import make_engine

    tpl_url = f"{url.rpartition('/')[0]}/{name}"
    engine = make_engine(tpl_url)
    upgrade(engine)
    engine.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def make_database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "studio.db.engine"
        shutil.copy(template, path)
        yield f"sqlite:///{path}"
        return
    template_name = request.getfixturevalue("postgres_template")
    admin = create_engine(_pg_admin_url(POSTGRES_URL).replace("postgresql://", "postgresql+psycopg://"),
                          isolation_level="AUTOCOMMIT")
    name = f"studio_t_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"'))
    try:
        yield f"{POSTGRES_URL.rpartition('/')[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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
