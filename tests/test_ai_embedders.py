"""Embedders: the statistical one always, the neural one against reference vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from studio.ai.embedders import (
    HashedTfidfEmbedder,
    MiniLMEmbedder,
    ModelUnavailable,
    choose_embedder,
)
from tests.ai_support import need_neural_model

CORPUS = ["Account management: create, enable, modify and disable accounts.",
          "Audit logging: generate audit records for defined events.",
          "Contingency planning: backups and recovery."]


def test_statistical_vectors_are_unit_length_and_deterministic() -> None:
    embedder = HashedTfidfEmbedder.fitted(CORPUS, 256)
    a = embedder.embed(["disable inactive accounts", "disable inactive accounts", ""])
    assert a.shape == (3, 256) and a.dtype == np.float32
    assert np.linalg.norm(a[0]) == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(a[0], a[1])
    assert not a[2].any()  # nothing to embed: a zero vector, not NaN


def test_statistical_ranks_the_related_text_first() -> None:
    embedder = HashedTfidfEmbedder.fitted(CORPUS, 1024)
    docs = embedder.embed(CORPUS)
    query = embedder.embed(["nightly backups of the database and recovery tests"])[0]
    assert int(np.argmax(docs @ query)) == 2


def test_vocabulary_is_persisted_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "ai" / "vocab.json"
    first = HashedTfidfEmbedder.load_or_fit(path, CORPUS, 512)
    second = HashedTfidfEmbedder.load_or_fit(path, ["a corpus that would give other weights"], 512)
    assert path.exists() and first.name == second.name
    assert np.array_equal(first.embed(["audit records"]), second.embed(["audit records"]))


def test_empty_corpus_is_not_persisted(tmp_path: Path) -> None:
    path = tmp_path / "vocab.json"
    HashedTfidfEmbedder.load_or_fit(path, [], 512)
    assert not path.exists()


def test_broken_model_falls_back_to_statistical_with_a_reason(tmp_path: Path) -> None:
    broken = tmp_path / "model"
    (broken / "1_Pooling").mkdir(parents=True)
    (broken / "config.json").write_text("{}")
    (broken / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    (broken / "tokenizer.json").write_text("{")
    with pytest.raises(ModelUnavailable):
        MiniLMEmbedder(broken)
    embedder, status = choose_embedder("neural", tmp_path / "vocab.json", CORPUS, tfidf_dim=256,
                                       model_dir=broken)
    assert status.kind == "statistical" and embedder.dim == 256
    assert status.fallback_reason and "unreadable" in status.fallback_reason
    assert status.as_dict()["offline"] is True


def test_statistical_choice_never_loads_the_model(tmp_path: Path) -> None:
    _, status = choose_embedder("statistical", tmp_path / "v.json", CORPUS, tfidf_dim=256,
                                model_dir=tmp_path / "missing")
    assert status.kind == "statistical" and status.fallback_reason is None


# Reference values from sentence-transformers 6.2 on torch for the same packaged model.
REFERENCE = {
    "Password policy requires 14 characters minimum.":
        [0.002976850, -0.010672264, -0.066685013, -0.088212445, -0.060540590, 0.068387449],
    "Les sauvegardes sont chiffrées chaque nuit.":
        [-0.018087454, -0.014094472, -0.020520743, -0.024565281, 0.048118878, 0.103042573],
}


def test_neural_matches_the_reference_implementation() -> None:
    need_neural_model()
    embedder = MiniLMEmbedder()
    vectors = embedder.embed(list(REFERENCE))
    assert vectors.shape == (2, 384)
    for row, expected in zip(vectors, REFERENCE.values(), strict=True):
        assert np.allclose(row[:6], expected, atol=1e-5)
    assert embedder.embed(["x" * 100_000]).shape == (1, 384)  # truncated, not refused
