"""What the AI tests share: catalogs imported the way users import them, the neural
model's presence."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.ai.evaluation import CATALOG, FRAMEWORK
from studio.bootstrap import Container
from tests.conftest import IN_CI
from tests.frameworks_support import LOW

__all__ = ["CATALOG", "FRAMEWORK", "LOW_FRAMEWORK", "import_catalog", "need_catalog", "need_neural_model"]

LOW_FRAMEWORK = "nist-800-53-low"


def import_catalog(c: Container, path: Path = CATALOG, key: str = FRAMEWORK) -> None:
    """Import an OSCAL catalog with the frameworks service, as `studio frameworks import` does."""
    c.frameworks.import_file(None, path.name, path.read_bytes(), key=key)


def need_catalog(path: Path = LOW) -> Path:
    """One of the NIST catalogs beside the repository (shared/data/oscal)."""
    if path.exists():
        return path
    if IN_CI:
        pytest.fail(f"the OSCAL catalog is required in CI ({path})")
    pytest.skip(f"the OSCAL test catalog is not present ({path})")


def need_neural_model() -> None:
    """Skip without the neural model locally; in CI its absence is a failure."""
    from studio.ai.embedders import MiniLMEmbedder, ModelUnavailable

    try:
        MiniLMEmbedder()
    except ModelUnavailable as exc:
        if IN_CI:
            pytest.fail(f"the neural model is required in CI: {exc}")
        pytest.skip(str(exc))
