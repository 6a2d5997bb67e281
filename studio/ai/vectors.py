"""Vector indexes behind one interface: an exact in-memory flat index, and the same index
kept in the database (SQLite file or PostgreSQL) so vectors commit with the analysis
that produced them.

PostgreSQL without pgvector (the case on the machines this was built on) uses the
database-backed flat index too: vectors in a bytea column, searched in process by a cached
numpy matrix that loads only what changed since the last query. `pgvector_available`
reports whether the extension could be used; see docs/ai.md.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from sqlalchemy import Insert, and_, delete, insert, select, text, update
from sqlalchemy.engine import Connection, Engine

from studio.ai.models import ai_vector_spaces, ai_vectors


@dataclass(frozen=True, slots=True)
class VectorItem:
    item_id: str
    kind: str  # "control" or "evidence"
    scope: str  # project id for evidence, framework key for controls
    vector: np.ndarray


@dataclass(frozen=True, slots=True)
class Hit:
    item_id: str
    kind: str
    scope: str
    score: float


@runtime_checkable
class VectorIndex(Protocol):
    """Nearest-neighbour search over unit vectors of one space (one embedder).

    Guarantees:
    - `upsert` replaces an item with the same id; `delete` of an unknown id is a no-op;
      with a connection, both take effect when that transaction commits and not before;
    - `query` is exact (cosine = dot product of unit vectors), best first, ties broken by
      item id, and returns only items of `kind` whose scope is in `scopes`: an empty
      `scopes` returns nothing, never everything; `scopes=None` is for internal jobs only;
    - the index never returns an item deleted in a committed transaction.
    """

    space: str
    dim: int

    def upsert(self, conn: Connection | None, items: Sequence[VectorItem]) -> None:
        """Add or replace items."""

    def delete(self, conn: Connection | None, item_ids: Collection[str]) -> None:
        """Remove items by id."""

    def query(self, conn: Connection | None, vector: np.ndarray, k: int = 10, *, kind: str,
              scopes: Collection[str] | None) -> list[Hit]:
        """The k nearest items of one kind within the given scopes."""

    def count(self, conn: Connection | None) -> int:
        """How many live items the index holds."""


class FlatIndex:
    """Exact search over a numpy matrix held in memory; the building block of the others."""

    def __init__(self, space: str, dim: int):
        self.space = space
        self.dim = dim
        self._matrix = np.zeros((0, dim), dtype=np.float32)
        self._ids: list[str] = []
        self._kinds: list[str] = []
        self._scopes: list[str] = []
        self._row: dict[str, int] = {}
        self._alive = np.zeros(0, dtype=bool)
        self._kind_code = np.zeros(0, dtype=np.int16)
        self._scope_code = np.zeros(0, dtype=np.int32)
        self._codes: dict[str, int] = {}
        self._kind_names = 0  # kinds share the code table with scopes
        self._size = 0

    def _code(self, value: str) -> int:
        code = self._codes.get(value)
        if code is None:
            code = self._codes[value] = len(self._codes) + 1
            self._kind_names += value.startswith("kind:")
        return code

    def _grow(self, needed: int) -> None:
        capacity = len(self._alive)
        if needed <= capacity:
            return
        new = max(needed, capacity * 2, 1024)
        matrix = np.zeros((new, self.dim), dtype=np.float32)
        matrix[:capacity] = self._matrix
        self._matrix = matrix
        for name, dtype in (("_alive", bool), ("_kind_code", np.int16), ("_scope_code", np.int32)):
            grown = np.zeros(new, dtype=dtype)
            grown[:capacity] = getattr(self, name)
            setattr(self, name, grown)

    def upsert(self, conn: Connection | None, items: Sequence[VectorItem]) -> None:
        for item in items:
            vector = np.asarray(item.vector, dtype=np.float32).reshape(-1)
            if vector.shape[0] != self.dim:
                raise ValueError(f"vector of dimension {vector.shape[0]} given to a {self.dim}-d index")
            row = self._row.get(item.item_id)
            if row is None:
                row = self._size
                self._grow(row + 1)
                self._size += 1
                self._row[item.item_id] = row
                self._ids.append(item.item_id)
                self._kinds.append(item.kind)
                self._scopes.append(item.scope)
            else:
                self._kinds[row] = item.kind
                self._scopes[row] = item.scope
            self._matrix[row] = vector
            self._alive[row] = True
            self._kind_code[row] = self._code("kind:" + item.kind)
            self._scope_code[row] = self._code(item.scope)

    def delete(self, conn: Connection | None, item_ids: Collection[str]) -> None:
        for item_id in item_ids:
            row = self._row.get(item_id)
            if row is not None:
                self._alive[row] = False

    def count(self, conn: Connection | None = None) -> int:
        return int(self._alive[: self._size].sum())

    def query(self, conn: Connection | None, vector: np.ndarray, k: int = 10, *, kind: str,
              scopes: Collection[str] | None) -> list[Hit]:
        n = self._size
        if n == 0 or k <= 0 or (scopes is not None and not scopes):
            return []
        kind_code = self._codes.get("kind:" + kind)
        if kind_code is None:
            return []
        mask = self._alive[:n] & (self._kind_code[:n] == kind_code)
        if scopes is not None:
            codes = {self._codes[s] for s in scopes if s in self._codes}
            # Every known scope (an admin's search) needs no per-row membership test.
            if len(codes) < len(self._codes) - self._kind_names:
                mask &= np.isin(self._scope_code[:n], np.fromiter(codes, dtype=np.int32))
        candidates = np.flatnonzero(mask)
        if candidates.size == 0:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        # Scoring every row and masking is faster than gathering the candidates first
        # unless the filter keeps a small fraction of the rows.
        if candidates.size * 4 < n:
            scores = self._matrix[candidates] @ query
        else:
            scores = (self._matrix[:n] @ query)[candidates]
        take = min(k, candidates.size)
        top = np.argpartition(-scores, take - 1)[:take] if take < candidates.size else np.arange(candidates.size)
        ranked = sorted(top, key=lambda i: (-float(scores[i]), self._ids[candidates[i]]))
        return [Hit(self._ids[candidates[i]], self._kinds[candidates[i]], self._scopes[candidates[i]],
                    float(scores[i])) for i in ranked]


class SqlVectorIndex:
    """Vectors stored in the `ai_vectors` table, searched through a cached `FlatIndex`.

    Writes go through the caller's connection, so they commit or roll back with the
    caller's transaction. Each write bumps the space's generation under a row lock held
    to commit, so generations are assigned in commit order and a reader that has applied
    every row up to generation G has missed nothing committed before G.
    """

    def __init__(self, engine: Engine, space: str, dim: int):
        self.engine = engine
        self.space = space
        self.dim = dim
        self._cache = FlatIndex(space, dim)
        self._generation = 0
        self._lock = threading.Lock()

    def _next_generation(self, conn: Connection) -> int:
        found = conn.execute(
            update(ai_vector_spaces).where(ai_vector_spaces.c.space == self.space)
            .values(generation=ai_vector_spaces.c.generation + 1)
            .returning(ai_vector_spaces.c.generation)
        ).scalar()
        if found is not None:
            return int(found)
        create: Insert
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            create = pg_insert(ai_vector_spaces).on_conflict_do_nothing(index_elements=["space"])
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            create = sqlite_insert(ai_vector_spaces).on_conflict_do_nothing(index_elements=["space"])
        conn.execute(create.values(space=self.space, dim=self.dim, generation=0))
        return self._next_generation(conn)

    def _write(self, conn: Connection, rows: list[dict[str, object]]) -> None:
        generation = self._next_generation(conn)
        ids = [r["item_id"] for r in rows]
        for start in range(0, len(ids), 500):
            conn.execute(delete(ai_vectors).where(ai_vectors.c.space == self.space,
                                                  ai_vectors.c.item_id.in_(ids[start:start + 500])))
        conn.execute(insert(ai_vectors), [{**r, "space": self.space, "seq": generation} for r in rows])

    def upsert(self, conn: Connection | None, items: Sequence[VectorItem]) -> None:
        if not items:
            return
        rows: list[dict[str, object]] = []
        for item in items:
            vector = np.asarray(item.vector, dtype="<f4").reshape(-1)
            if vector.shape[0] != self.dim:
                raise ValueError(f"vector of dimension {vector.shape[0]} given to a {self.dim}-d index")
            rows.append({"item_id": item.item_id, "kind": item.kind, "scope": item.scope,
                         "deleted": False, "vector": vector.tobytes()})
        self._in_transaction(conn, rows)

    def delete(self, conn: Connection | None, item_ids: Collection[str]) -> None:
        if not item_ids:
            return
        # Tombstones, so that a cached reader learns of the deletion by generation.
        rows: list[dict[str, object]] = [
            {"item_id": i, "kind": "deleted", "scope": "", "deleted": True, "vector": None}
            for i in item_ids]
        self._in_transaction(conn, rows)

    def _in_transaction(self, conn: Connection | None, rows: list[dict[str, object]]) -> None:
        if conn is not None:
            self._write(conn, rows)
            return
        with self.engine.begin() as own:
            self._write(own, rows)

    def refresh(self, conn: Connection | None = None) -> None:
        """Apply the rows written since this process last looked."""
        if conn is None:
            with self.engine.connect() as own:
                self.refresh(own)
                own.rollback()
            return
        generation = conn.execute(select(ai_vector_spaces.c.generation)
                                  .where(ai_vector_spaces.c.space == self.space)).scalar()
        if generation is None or generation <= self._generation:
            return
        with self._lock:
            if generation <= self._generation:
                return
            result = conn.execute(
                select(ai_vectors.c.item_id, ai_vectors.c.kind, ai_vectors.c.scope,
                       ai_vectors.c.deleted, ai_vectors.c.vector, ai_vectors.c.seq)
                .where(and_(ai_vectors.c.space == self.space, ai_vectors.c.seq > self._generation))
                .order_by(ai_vectors.c.seq)
            )
            seen = self._generation
            batch: list[VectorItem] = []
            for item_id, kind, scope, deleted, blob, seq in result:
                seen = max(seen, int(seq))
                if deleted:
                    if batch:
                        self._cache.upsert(None, batch)
                        batch = []
                    self._cache.delete(None, [item_id])
                else:
                    batch.append(VectorItem(item_id, kind, scope, np.frombuffer(blob, dtype="<f4")))
            if batch:
                self._cache.upsert(None, batch)
            self._generation = max(seen, int(generation))

    def query(self, conn: Connection | None, vector: np.ndarray, k: int = 10, *, kind: str,
              scopes: Collection[str] | None) -> list[Hit]:
        self.refresh(conn)
        return self._cache.query(None, vector, k, kind=kind, scopes=scopes)

    def count(self, conn: Connection | None) -> int:
        self.refresh(conn)
        return self._cache.count()


def pgvector_available(engine: Engine) -> bool:
    """Whether this PostgreSQL server offers the `vector` extension (installed or installable)."""
    if engine.dialect.name != "postgresql":
        return False
    try:
        with engine.connect() as conn:
            return conn.execute(text(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).first() is not None
    except Exception:
        return False
