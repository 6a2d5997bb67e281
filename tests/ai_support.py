"""What the AI tests share: the OSCAL catalogs, the neural model's presence, service setup."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.frameworks_support import LOW, MODERATE, OSCAL  # noqa: F401 - shared with AI tests

FRAMEWORK = "nist-800-53-moderate"


def need_catalog() -> Path:
    if MODERATE.exists():
        return MODERATE
    if IN_CI:
        pytest.fail(f"the OSCAL catalog is required in CI ({MODERATE})")
    pytest.skip("the OSCAL test catalogs are not present")


def need_neural_model() -> None:
    """Skip without the neural model locally; in CI its absence is a failure."""
    from studio.ai.embedders import MiniLMEmbedder, ModelUnavailable

    try:
        MiniLMEmbedder()
    except ModelUnavailable as exc:
        if IN_CI:
            pytest.fail(f"the neural model is required in CI: {exc}")
        pytest.skip(str(exc))
