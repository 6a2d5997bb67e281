"""The `studio` command line: migrations, user creation, the demo data set, and serving."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
import structlog
from sqlalchemy import func, select
from typer.testing import CliRunner

from studio.cli.main import app
from studio.db.engine import make_engine
from studio.db.migrate import current
from studio.domains.evidence.models import evidence
from studio.domains.projects.models import projects
from studio.domains.users.models import organizations, users
from tests.conftest import temporary_postgres_database
from tests.timing_support import wait_until

PASSWORD = "a long enough password"
ROW = re.compile(r"(super_admin|admin|manager|auditor|customer|viewer)\s*│\s*(\S+@\S+)\s*│\s*(\S+)")


@pytest.fixture
def empty_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all, so `db upgrade` has real work to do."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'studio.db.engine'}"
        return
    with temporary_postgres_database("studio_cli") as url:
        yield url


@pytest.fixture
def cli_env(tmp_path: Path, empty_database_url: str) -> Iterator[dict[str, str]]:
    env = {
        "STUDIO_DATA_DIR": str(tmp_path / "data"),
        "STUDIO_DATABASE_URL": empty_database_url,
        "STUDIO_ARGON2_MEMORY_KIB": "1024",
        "STUDIO_ARGON2_TIME_COST": "1",
        "STUDIO_LOG_LEVEL": "WARNING",
        # The demo indexes a whole catalog; the neural model's speed is not what this tests.
        "STUDIO_AI_EMBEDDER": "statistical",
    }
    yield env
    # The CLI configures process-wide logging onto the runner's captured stream.
    structlog.reset_defaults()


def run(env: dict[str, str], *args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), env=env, input=input)


def count(url: str, table) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(table)).scalar_one()
    finally:
        engine.dispose()


def credentials(output: str) -> dict[str, tuple[str, str]]:
    return {role: (email, password) for role, email, password in ROW.findall(output)}


def test_db_upgrade_migrates_an_empty_database(cli_env):
    result = run(cli_env, "db", "upgrade")
    assert result.exit_code == 0, result.output
    engine = make_engine(cli_env["STUDIO_DATABASE_URL"])
    try:
        revision = current(engine)
    finally:
        engine.dispose()
    assert revision is not None and revision in result.output
    assert count(cli_env["STUDIO_DATABASE_URL"], users) == 0
    again = run(cli_env, "db", "upgrade")
    assert again.exit_code == 0 and revision in again.output
    assert run(cli_env, "db", "current").output.strip() == revision


def test_user_create_then_log_in(cli_env, tmp_path):
    assert run(cli_env, "db", "upgrade").exit_code == 0
    result = run(cli_env, "user", "create", "--email", "Root@Example.org", "--name", "Root",
                 "--role", "admin", "--organization", "Example", "--password", PASSWORD)
    assert result.exit_code == 0, result.output
    assert "root@example.org" in result.output
    url = cli_env["STUDIO_DATABASE_URL"]
    assert (count(url, users), count(url, organizations)) == (1, 1)

    # A second user joins the existing organization; the password may come from the environment.
    second = run({**cli_env, "STUDIO_PASSWORD": PASSWORD}, "user", "create", "--email", "two@example.org",
                 "--name", "Two", "--role", "viewer", "--organization", "Example")
    assert second.exit_code == 0, second.output
    assert (count(url, users), count(url, organizations)) == (2, 1)

    from starlette.testclient import TestClient

    from studio.app import create_app
    from studio.bootstrap import bootstrap
    from studio.settings import Settings

    settings = Settings(data_dir=Path(cli_env["STUDIO_DATA_DIR"]), database_url=url, rate_limit_enabled=False)
    container = bootstrap(settings)
    try:
        with TestClient(create_app(container)) as client:
            login = client.post("/api/v1/auth/login", json={"email": "root@example.org", "password": PASSWORD})
            assert login.status_code == 200 and login.json()["data"]["user"]["role"] == "admin"
    finally:
        container.close()


@pytest.mark.parametrize("args,message", [
    (["--email", "not-an-email", "--name", "X", "--role", "admin", "--password", PASSWORD], "email"),
    (["--email", "a@example.org", "--name", "X", "--role", "admin", "--password", "short"], "password"),
    (["--email", "a@example.org", "--name", "X", "--role", "emperor", "--password", PASSWORD], "role"),
    (["--email", "a@example.org", "--name", "   ", "--role", "admin", "--password", PASSWORD], "name"),
])
def test_user_create_validation_errors_exit_non_zero(cli_env, args, message):
    assert run(cli_env, "db", "upgrade").exit_code == 0
    result = run(cli_env, "user", "create", *args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert count(cli_env["STUDIO_DATABASE_URL"], users) == 0


def test_user_create_duplicate_email_exits_non_zero(cli_env):
    assert run(cli_env, "db", "upgrade").exit_code == 0
    args = ["user", "create", "--email", "dup@example.org", "--name", "Dup", "--password", PASSWORD]
    assert run(cli_env, *args).exit_code == 0
    again = run(cli_env, "user", "create", "--email", "DUP@example.org", "--name", "Dup", "--password", PASSWORD)
    assert again.exit_code == 1 and "already exists" in again.output
    assert count(cli_env["STUDIO_DATABASE_URL"], users) == 1


def test_user_create_on_an_unmigrated_database_says_so(cli_env):
    result = run(cli_env, "user", "create", "--email", "a@example.org", "--name", "A", "--password", PASSWORD)
    assert result.exit_code != 0
    assert "studio db upgrade" in result.output
    assert "Traceback" not in result.output


def test_demo_loads_once_and_prints_the_same_credentials(cli_env):
    first = run(cli_env, "demo")
    assert first.exit_code == 0, first.output
    creds = credentials(first.output)
    assert set(creds) == {"super_admin", "admin", "manager", "auditor", "customer", "viewer"}
    url = cli_env["STUDIO_DATABASE_URL"]
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(organizations)).scalar_one() == 1
            assert conn.execute(select(func.count()).select_from(projects)).scalar_one() == 2
            roles = sorted(conn.execute(select(users.c.role)).scalars())
            states = set(conn.execute(select(evidence.c.status)).scalars())
            evidence_count = conn.execute(select(func.count()).select_from(evidence)).scalar_one()
    finally:
        engine.dispose()
    assert roles == sorted(creds)
    assert states == {"pending", "in_review", "approved", "rejected"}

    second = run(cli_env, "demo")
    assert second.exit_code == 0, second.output
    assert credentials(second.output) == creds
    assert (count(url, organizations), count(url, users), count(url, projects), count(url, evidence)) == (
        1, 6, 2, evidence_count)

    from starlette.testclient import TestClient

    from studio.app import create_app
    from studio.bootstrap import bootstrap
    from studio.settings import Settings

    settings = Settings(data_dir=Path(cli_env["STUDIO_DATA_DIR"]), database_url=url, rate_limit_enabled=False,
                        argon2_memory_kib=1024, argon2_time_cost=1)
    container = bootstrap(settings)
    try:
        with TestClient(create_app(container)) as client:
            for role, (email, password) in creds.items():
                login = client.post("/api/v1/auth/login", json={"email": email, "password": password})
                assert login.status_code == 200, role
                assert login.json()["data"]["user"]["role"] == role
    finally:
        container.close()


# -- serving ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_answers_with_demo_data(cli_env, tmp_path):
    demo = run(cli_env, "demo")
    assert demo.exit_code == 0, demo.output
    email, password = credentials(demo.output)["viewer"]
    port = free_port()
    env = {**os.environ, **cli_env, "STUDIO_LOG_FORMAT": "json"}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "studio.cli.main", "serve", "--port", str(port), "--no-workers"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:  # another process: nothing to wait on but its answer
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, 60, "the server to answer /readyz", interval=0.2)
        login = httpx.post(f"{base}/api/v1/auth/login", json={"email": email, "password": password}, timeout=10)
        assert login.status_code == 200, login.text
        token = login.json()["data"]["accessToken"]
        listed = httpx.get(f"{base}/api/v1/projects", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert listed.status_code == 200
        assert sorted(p["name"] for p in listed.json()["data"]["items"]) == [
            "FedRAMP Moderate readiness", "SOC 2 Type II 2026"]
        if sys.platform.startswith("linux"):  # served with the C parser and loop (studio/serving.py)
            loaded = Path(f"/proc/{proc.pid}/maps").read_text()
            assert "httptools" in loaded and "uvloop" in loaded
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()
