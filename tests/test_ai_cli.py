"""`studio doctor`, `studio ai index` and `studio search` against a real database."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from studio.bootstrap import Container
from studio.cli.main import app
from tests.ai_support import FRAMEWORK, import_catalog


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Any, world: Any) -> CliRunner:
    monkeypatch.setenv("STUDIO_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("STUDIO_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("STUDIO_SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("STUDIO_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("STUDIO_AI_EMBEDDER", "statistical")
    # The CLI points structlog at the stderr pytest captures for this test only; loggers
    # cached then would write to a closed file in later tests.
    monkeypatch.setattr("studio.logging.configure_logging", lambda *args, **kwargs: None)
    return CliRunner()


def test_doctor_index_and_search(cli_env: CliRunner, container: Container) -> None:
    doctor = cli_env.invoke(app, ["doctor"], terminal_width=200)
    assert doctor.exit_code == 0, doctor.output
    # Only the world's seed frameworks (tests/conftest.py) so far, none indexed.
    assert FRAMEWORK not in doctor.output and "0 vectors" in doctor.output
    import_catalog(container)
    indexed = cli_env.invoke(app, ["ai", "index", FRAMEWORK])
    assert indexed.exit_code == 0, indexed.output
    doctor = cli_env.invoke(app, ["doctor"], terminal_width=200)
    assert doctor.exit_code == 0, doctor.output
    assert "tfidf-2048" in doctor.output and "statistical" in doctor.output
    assert "574 vectors" in doctor.output and FRAMEWORK in doctor.output
    found = cli_env.invoke(app, ["search", "nightly backups of servers", "--as", "viewer@one.example",
                                 "--kind", "control", "--limit", "5"], terminal_width=200)
    assert found.exit_code == 0, found.output
    assert "CP-9" in found.output
    unknown = cli_env.invoke(app, ["search", "backups", "--as", "nobody@one.example"])
    assert unknown.exit_code == 1
    assert cli_env.invoke(app, ["ai", "index", "no-such-framework"]).exit_code == 1
