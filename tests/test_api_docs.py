"""docs/api.md documents every error code of the catalogue, with its status."""

from __future__ import annotations

import re
from pathlib import Path

from studio.errors import ERROR_CATALOGUE

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def test_every_error_code_is_in_the_catalogue_table():
    rows = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^\| `([a-z_]+)` \| (\d{3}) \|", DOC.read_text(), re.MULTILINE)
    }
    missing = sorted(set(ERROR_CATALOGUE) - set(rows))
    assert not missing, f"add these codes to the table in docs/api.md: {missing}"
    wrong = {
        code: (rows[code], status)
        for code, (status, _) in ERROR_CATALOGUE.items()
        if rows[code] != status
    }
    assert not wrong, f"docs/api.md states the wrong status (doc, code): {wrong}"
    unknown = sorted(set(rows) - set(ERROR_CATALOGUE))
    assert not unknown, f"docs/api.md lists codes the API no longer has: {unknown}"


def test_no_two_api_operations_match_the_same_request(tmp_path):
    """studio/app.py orders the domain routers by traffic; that is only safe while no
    request could match two operations (then the order would pick the handler)."""
    from starlette.routing import compile_path

    from studio.app import create_app
    from tests.conftest import make_settings

    app = create_app(settings=make_settings(tmp_path, f"sqlite:///{tmp_path}/docs.db"))

    operations = [(path, method.upper(), compile_path(path)[0])
                  for path, ops in app.api.openapi()["paths"].items() for method in ops]
    assert len(operations) > 50
    # a path parameter could be any segment, including another route's literal one
    literals = {seg for p, _, _ in operations for seg in p.split("/") if seg and "{" not in seg}
    for path, method, _ in operations:
        for value in ["0b5c1c8e-1111-4222-8333-444455556666", *literals]:
            sample = re.sub(r"\{[^}]+\}", value, path)
            matching = [p for p, m, regex in operations if m == method and regex.match(sample)]
            assert len(matching) == 1, (method, sample, matching)
