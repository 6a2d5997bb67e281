"""Replay from the start: `studio events replay --from 0` (positions start at 1, and the docs
promise position 0 as the start)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from studio.cli.main import app as cli_app
from studio.events.activity import project_activity


@pytest.fixture
def cli(container, monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIO_DATABASE_URL", container.settings.resolved_database_url)
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path))
    monkeypatch.setattr("studio.logging.configure_logging", lambda *a, **k: None)
    runner = CliRunner()
    return lambda *args: runner.invoke(cli_app, list(args))


def test_replay_from_position_0_rebuilds_everything(container, world, cli):
    container.dispatcher.drain()
    with container.db.read() as conn:
        live = conn.execute(select(project_activity).order_by(project_activity.c.project_id)).all()
    with container.db.write() as uow:
        uow.conn.execute(project_activity.update().values(events=0, members=99))
    result = cli("events", "replay", "project_activity", "--from", "0")
    assert result.exit_code == 0, result.output
    with container.db.read() as conn:
        assert conn.execute(select(project_activity).order_by(project_activity.c.project_id)).all() == live
    assert cli("events", "replay", "project_activity", "--from", "-1").exit_code != 0

