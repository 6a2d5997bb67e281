"""Projections and replay: `project_activity` counts evidence items, not uploads, and
`studio events replay --from 0` replays from the start (positions start at 1, and the docs
promise position 0 as the start)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient
from typer.testing import CliRunner

from studio.cli.main import app as cli_app
from studio.events.activity import project_activity
from tests import corpus

API = "/api/v1"


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]


def upload(client: TestClient, actor: Any, evidence_id: str, name: str, content: bytes) -> Any:
    return ok(client.put(f"{API}/evidence/{evidence_id}/files/raw",
                         headers={**actor.headers, "Content-Type": "application/pdf"},
                         params={"filename": name}, content=content), 201)


def test_uploads_are_not_counted_as_evidence(container, world, client):
    customer = world["customer"]
    ids = [ok(client.post(f"{API}/projects/{world.project_a}/evidence", headers=customer.headers,
                          json={"title": f"E{i}"}), 201)["id"] for i in range(2)]
    for evidence_id, name in ((ids[0], "a.pdf"), (ids[0], "a.pdf"), (ids[0], "b.pdf"), (ids[1], "c.pdf")):
        upload(client, customer, evidence_id, name, corpus.pdf(1))
    container.dispatcher.drain()

    def total() -> int:
        with container.db.read() as conn:
            return int(conn.execute(select(project_activity.c.evidence_total).where(
                project_activity.c.project_id == str(world.project_a))).scalar_one())

    assert total() == 2  # two evidence items, four uploads
    assert client.delete(f"{API}/evidence/{ids[1]}", headers=customer.headers).status_code == 200
    container.dispatcher.drain()
    assert total() == 1
    container.dispatcher.replay("project_activity")
    assert total() == 1


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

