"""`studio frameworks ...` on an embedded (SQLite) installation."""

from __future__ import annotations

from typer.testing import CliRunner

from studio.cli.main import app
from tests.frameworks_support import LOW, MODERATE


def test_import_list_show_derive_and_a_bad_file(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STUDIO_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("STUDIO_LOG_LEVEL", "WARNING")
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, ["frameworks", "import", str(MODERATE), "--key", "moderate"])
    assert result.exit_code == 0, result.output
    assert "287 controls" in result.output
    assert runner.invoke(app, ["frameworks", "import", str(LOW), "--key", "low"]).exit_code == 0
    again = runner.invoke(app, ["frameworks", "import", str(LOW), "--key", "low"])
    assert "nothing changed" in again.output
    listed = runner.invoke(app, ["frameworks", "list"])
    assert "moderate" in listed.output and "low" in listed.output
    shown = runner.invoke(app, ["frameworks", "show", "low", "-q", "unsuccessful logon"])
    assert "AC-7" in shown.output
    derived = runner.invoke(app, ["frameworks", "derive", "low", "moderate"])
    assert "149 equal mappings derived" in derived.output
    bad = tmp_path / "bad.csv"
    bad.write_text("ref,title\nA-1,First\nA-1,Again\n")
    failed = runner.invoke(app, ["frameworks", "import", str(bad)])
    assert failed.exit_code == 2
    assert "line 3" in failed.output and "duplicate ref" in failed.output
    assert "bad" not in runner.invoke(app, ["frameworks", "list"]).output
    # The CLI imports into the shared catalog unless told an organization, which must exist.
    nobody = runner.invoke(app, ["frameworks", "import", str(LOW), "--key", "own", "--organization", "Nobody"])
    assert nobody.exit_code == 2 and "no organization named 'Nobody'" in nobody.output
