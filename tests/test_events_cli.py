"""The event commands as an operator runs them: parked, retry, replay, tail, status."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from studio.cli.main import app
from studio.events.activity import project_activity
from studio.events.dispatcher import Dispatcher, RetryPolicy, dead_letters
from tests.events_support import Poison, emit


@pytest.fixture
def cli(container, monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIO_DATABASE_URL", container.settings.resolved_database_url)
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path))
    monkeypatch.setattr("studio.logging.configure_logging", lambda *a, **k: None)
    monkeypatch.setattr("studio.cli.events.out.width", 250)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_parked_lists_and_retry_requeues(container, cli):
    poison = Poison("bad")
    d = Dispatcher(container.db, [poison], retry=RetryPolicy(max_attempts=1))
    emit(container.db, "work.item", "bad", 2)
    d.run_once()
    with container.db.read() as conn:
        letters = dead_letters(conn)
    listed = cli("events", "parked")
    assert listed.exit_code == 0
    assert str(letters[0]["event_id"]) in listed.output and "blocked" in listed.output
    assert cli("events", "retry").exit_code != 0  # neither an id nor --all
    assert cli("events", "retry", "not-a-uuid").exit_code != 0
    done = cli("events", "retry", "--all")
    assert done.exit_code == 0, done.output
    with container.db.read() as conn:
        assert [r["status"] for r in dead_letters(conn)] == ["retrying", "blocked"]
    assert cli("events", "retry", "--all").exit_code == 1  # nothing parked any more


def test_replay_rebuilds_and_rejects_unknown_consumers(container, world, cli):
    container.dispatcher.drain()
    with container.db.read() as conn:
        live = conn.execute(select(project_activity).order_by(project_activity.c.project_id)).all()
    with container.db.write() as uow:
        uow.conn.execute(project_activity.delete())
    result = cli("events", "replay", "project_activity")
    assert result.exit_code == 0, result.output
    with container.db.read() as conn:
        assert (
            conn.execute(select(project_activity).order_by(project_activity.c.project_id)).all()
            == live
        )
    assert cli("events", "replay", "nope").exit_code == 2
    assert cli("events", "replay", "project_activity", "--since", "yesterday").exit_code != 0
    assert (
        cli("events", "replay", "project_activity", "--since", "2020-01-01T00:00:00Z").exit_code
        == 0
    )


def test_tail_and_status_show_events_and_lag(container, world, cli):
    emit(container.db, "evidence.created", "project:tail-test")
    shown = cli("events", "tail", "--no-follow", "--last", "3")
    assert (
        shown.exit_code == 0
        and "evidence.created" in shown.output
        and "project:tail-test" in shown.output
    )
    status = cli("events", "status")
    assert status.exit_code == 0 and "project_activity" in status.output
