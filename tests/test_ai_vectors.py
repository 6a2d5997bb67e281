"""The VectorIndex contract: one suite, run against the in-memory flat index and the
database-backed index on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest
from sqlalchemy.engine import Engine

from studio.ai.vectors import FlatIndex, SqlVectorIndex, VectorIndex, VectorItem
from studio.db.engine import make_engine
from tests.conftest import make_database_url

DIM = 16


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def item(n: int, scope: str = "p1", kind: str = "evidence") -> VectorItem:
    return VectorItem(f"{kind}:{n}", kind, scope, unit(n))


class VectorIndexContract:
    """Every VectorIndex implementation passes these."""

    def make_index(self) -> VectorIndex:
        raise NotImplementedError

    def write(self, index: VectorIndex, items: list[VectorItem]) -> None:
        index.upsert(None, items)

    def test_nearest_first_and_exact(self) -> None:
        index = self.make_index()
        items = [item(n) for n in range(50)]
        self.write(index, items)
        hits = index.query(None, items[7].vector, 5, kind="evidence", scopes=["p1"])
        assert hits[0].item_id == "evidence:7"
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
        expected = sorted(range(50), key=lambda n: -float(items[n].vector @ items[7].vector))[:5]
        assert [h.item_id for h in hits] == [f"evidence:{n}" for n in expected]
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    def test_scopes_filter_and_empty_scopes_return_nothing(self) -> None:
        index = self.make_index()
        self.write(index, [item(1, "p1"), item(2, "p2"), item(3, "p3")])
        found = {h.item_id for h in index.query(None, unit(2), 10, kind="evidence", scopes=["p1", "p3"])}
        assert found == {"evidence:1", "evidence:3"}
        assert index.query(None, unit(2), 10, kind="evidence", scopes=[]) == []
        assert index.query(None, unit(2), 10, kind="evidence", scopes=["unknown"]) == []

    def test_kind_filter(self) -> None:
        index = self.make_index()
        self.write(index, [item(1, "p1", "evidence"), item(2, "fw", "control")])
        assert [h.item_id for h in index.query(None, unit(1), 10, kind="control", scopes=None)] == ["control:2"]

    def test_upsert_replaces_and_delete_removes(self) -> None:
        index = self.make_index()
        self.write(index, [item(1), item(2)])
        self.write(index, [VectorItem("evidence:1", "evidence", "p2", unit(99))])
        hits = index.query(None, unit(99), 1, kind="evidence", scopes=["p2"])
        assert hits[0].item_id == "evidence:1" and hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert index.query(None, unit(1), 10, kind="evidence", scopes=["p1"])[0].item_id == "evidence:2"
        index.delete(None, ["evidence:2", "evidence:404"])
        assert index.query(None, unit(2), 10, kind="evidence", scopes=["p1"]) == []
        assert index.count(None) == 1

    def test_wrong_dimension_is_refused(self) -> None:
        index = self.make_index()
        with pytest.raises(ValueError, match="dimension"):
            index.upsert(None, [VectorItem("x", "evidence", "p1", np.ones(DIM + 1, dtype=np.float32))])

    def test_k_larger_than_matches(self) -> None:
        index = self.make_index()
        self.write(index, [item(1), item(2)])
        assert len(index.query(None, unit(1), 10, kind="evidence", scopes=["p1"])) == 2


class TestFlatIndex(VectorIndexContract):
    def make_index(self) -> VectorIndex:
        return FlatIndex("test", DIM)


class SqlContract(VectorIndexContract):
    """Plus what storing in the database adds: transactions and sharing between processes."""

    engine: Engine

    @pytest.fixture(autouse=True)
    def _database(self, request: pytest.FixtureRequest, tmp_path: Any) -> Any:
        urls = make_database_url(self.backend, request, tmp_path)
        url = next(urls)
        self.engine = make_engine(url)
        self.space = f"test-{uuid.uuid4().hex[:8]}"
        yield
        self.engine.dispose()
        next(urls, None)

    def make_index(self) -> VectorIndex:
        return SqlVectorIndex(self.engine, self.space, DIM)

    def test_rolled_back_write_is_invisible(self) -> None:
        index = self.make_index()
        self.write(index, [item(1)])
        with self.engine.connect() as conn:
            tx = conn.begin()
            index.upsert(conn, [item(2)])
            index.delete(conn, ["evidence:1"])
            tx.rollback()
        assert {h.item_id for h in index.query(None, unit(1), 10, kind="evidence", scopes=["p1"])} == {"evidence:1"}

    def test_another_process_sees_writes_and_deletions(self) -> None:
        writer, reader = self.make_index(), self.make_index()
        self.write(writer, [item(1), item(2)])
        assert reader.count(None) == 2
        writer.delete(None, ["evidence:1"])
        self.write(writer, [item(3)])
        assert {h.item_id for h in reader.query(None, unit(1), 10, kind="evidence", scopes=["p1"])} == {
            "evidence:2", "evidence:3"}


class TestSqliteVectorIndex(SqlContract):
    backend = "sqlite"


@pytest.mark.postgres
class TestPostgresVectorIndex(SqlContract):
    backend = "postgres"
