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
