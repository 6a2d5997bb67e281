"""Tamper evidence: rows altered, deleted or swapped directly in the database are detected."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from studio.events.audit import verify
from tests.events_support import emit


def _stream(container, n=5) -> str:
    stream = f"project:{uuid.uuid4()}"
    emit(container.db, "evidence.created", stream, n, title="x")
    emit(container.db, "evidence.created", "project:other", 2)
    return stream


def _positions(container, stream) -> list[int]:
    with container.db.read() as conn:
        return list(
            conn.execute(
                text("SELECT position FROM events WHERE stream = :s ORDER BY stream_version"),
                {"s": stream},
            ).scalars()
        )


def _sql(container, sql, **params) -> None:
    with container.db.write() as uow:
        uow.conn.execute(text(sql), params)


def _first_break(container, stream):
    with container.db.read() as conn:
        report = verify(conn)
    breaks = [b for b in report.breaks if b.stream == stream]
    assert len(report.breaks) == len(breaks), "only the tampered stream may be reported"
    return breaks[0] if breaks else None


def test_untouched_chains_verify(container):
    _stream(container)
    with container.db.read() as conn:
        report = verify(conn)
    assert report.ok and report.events == 7 and report.streams == 2


@pytest.mark.parametrize(
    "column,value",
    [
        ("data", '{"i":9,"title":"x"}'),
        ("data", '{"i": 2, "title": "x"}'),  # same content, not canonical text
        ("metadata", '{"actor":"someone-else"}'),
        ("type", "evidence.approved"),
        ("timestamp", None),
        ("source", "forged"),
    ],
)
def test_altered_event_is_named(container, column, value):
    stream = _stream(container)
    target = _positions(container, stream)[2]
    if column == "timestamp":
        _sql(
            container,
            "UPDATE events SET timestamp = (SELECT timestamp FROM events WHERE position = 1) "
            "WHERE position = :p",
            p=target,
        )
    else:
        _sql(container, f"UPDATE events SET {column} = :v WHERE position = :p", v=value, p=target)  # noqa: S608
    found = _first_break(container, stream)
    assert found is not None and found.position == target and "altered" in found.reason


def test_deleted_event_is_named(container):
    stream = _stream(container)
    positions = _positions(container, stream)
    _sql(container, "DELETE FROM events WHERE position = :p", p=positions[1])
    found = _first_break(container, stream)
    assert found is not None and found.position == positions[2] and "deleted" in found.reason


def test_deleted_last_event_is_detected(container):
    stream = _stream(container)
    _sql(container, "DELETE FROM events WHERE position = :p", p=_positions(container, stream)[-1])
    found = _first_break(container, stream)
    assert found is not None and found.stream_version == 5 and "deleted" in found.reason


def test_swapped_payloads_are_detected(container):
    stream = _stream(container)
    a, b = _positions(container, stream)[1:3]
    _sql(
        container,
        "UPDATE events SET data = CASE WHEN position = :a THEN "
        "(SELECT data FROM events WHERE position = :b) ELSE "
        "(SELECT data FROM events WHERE position = :a) END WHERE position IN (:a, :b)",
        a=a,
        b=b,
    )
    found = _first_break(container, stream)
    assert found is not None and found.position == a


def test_reordered_events_are_detected(container):
    stream = _stream(container)
    a, b = _positions(container, stream)[1:3]
    # swap the two events' places in the stream (versions), keeping everything else
    _sql(
        container,
        "UPDATE events SET stream_version = -stream_version WHERE position IN (:a, :b)",
        a=a,
        b=b,
    )
    _sql(
        container,
        "UPDATE events SET stream_version = CASE WHEN position = :a THEN 3 ELSE 2 END "
        "WHERE position IN (:a, :b)",
        a=a,
        b=b,
    )
    found = _first_break(container, stream)
    assert found is not None and found.position == b and found.stream_version == 2


def test_cli_verify_exits_nonzero_and_names_the_event(container, monkeypatch, tmp_path):
    from studio.cli.main import app

    stream = _stream(container)
    project_id = stream.removeprefix("project:")
    monkeypatch.setenv("STUDIO_DATABASE_URL", container.settings.resolved_database_url)
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path))
    # the CLI would bind the log output to the runner's stream, closed after invoke
    monkeypatch.setattr("studio.logging.configure_logging", lambda *a, **k: None)
    runner = CliRunner()
    good = runner.invoke(app, ["audit", "verify", "--project", project_id])
    assert good.exit_code == 0, good.output
    target = _positions(container, stream)[3]
    _sql(container, "UPDATE events SET data = '{}' WHERE position = :p", p=target)
    bad = runner.invoke(app, ["audit", "verify", "--project", project_id])
    assert bad.exit_code == 1
    assert f"position {target}" in bad.output
