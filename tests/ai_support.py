"""What the AI tests share: the OSCAL catalogs, the neural model's presence, service setup."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import IN_CI

OSCAL = Path("/work/shared/data/oscal")
for candidate in (Path(__file__).resolve().parents[2] / "shared" / "data" / "oscal",
                  Path(__file__).resolve().parents[1] / "shared" / "data" / "oscal"):
    if candidate.exists():
        OSCAL = candidate
        break
MODERATE = OSCAL / "NIST_SP-800-53_rev5_MODERATE-baseline-resolved-profile_catalog-min.json"
LOW = OSCAL / "NIST_SP-800-53_rev5_LOW-baseline-resolved-profile_catalog-min.json"
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
