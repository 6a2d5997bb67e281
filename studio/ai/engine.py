"""Ranking controls for a text: the part of the AI service that needs no database.

Each control is stored as two vectors, its title and its title with statement: the title
says what the control is about in the words evidence uses, the statement adds detail.
On the evaluation set, 0.7 × full + 0.3 × title beat either alone (docs/benchmarks.md).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

import numpy as np
from sqlalchemy.engine import Connection

from studio.ai.controls import ControlText
from studio.ai.embedders import Embedder
from studio.ai.vectors import VectorIndex, VectorItem

FULL_WEIGHT = 0.7
TITLE_WEIGHT = 0.3
MAX_ANALYSED_CHARS = 200_000  # a 10 MB log says no more about its controls than its head
MAX_SENTENCES = 64
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")


@dataclass(frozen=True, slots=True)
class Suggestion:
    framework: str
    ref: str
    title: str
    score: float
    matched: list[str]

    def as_dict(self) -> dict[str, object]:
        return {"framework": self.framework, "controlRef": self.ref, "controlTitle": self.title,
                "score": round(self.score, 4), "matchedSentences": self.matched}


def sentences(text: str) -> list[str]:
    """The text's sentences (or lines), trimmed, the shortest fragments dropped."""
    parts = [p.strip() for p in _SENTENCE.split(text[:MAX_ANALYSED_CHARS])]
    return [p[:1000] for p in parts if len(p) >= 12][:MAX_SENTENCES]


class ControlCatalog:
    """Control texts by framework, and their vectors in an index (two per control)."""

    def __init__(self, embedder: Embedder, index: VectorIndex):
        self.embedder = embedder
        self.index = index
        self.texts: dict[tuple[str, str], ControlText] = {}
        # Full-text vectors of controls, to find the evidence sentences that match them
        # without re-embedding a control's long statement for every evidence item.
        self._vectors: dict[tuple[str, str], np.ndarray] = {}

    def control_vectors(self, controls: list[ControlText]) -> np.ndarray:
        """The controls' full-text vectors, embedding only those not seen yet."""
        missing = [c for c in controls if (c.framework, c.ref) not in self._vectors]
        if missing:
            for control, vector in zip(missing, self.embedder.embed([c.text for c in missing]), strict=True):
                self._vectors[(control.framework, control.ref)] = vector
        return np.stack([self._vectors[(c.framework, c.ref)] for c in controls])

    def remember(self, controls: Iterable[ControlText]) -> None:
        for control in controls:
            self.texts[(control.framework, control.ref)] = control

    def index_batch(self, conn: Connection | None, controls: list[ControlText]) -> int:
        """Embed and store one batch of controls; returns how many were stored."""
        if not controls:
            return 0
        self.remember(controls)
        full = self.embedder.embed([c.text for c in controls])
        titles = self.embedder.embed([c.title or c.ref for c in controls])
        items = []
        for control, f, t in zip(controls, full, titles, strict=True):
            self._vectors[(control.framework, control.ref)] = f
            items.append(VectorItem(control.item_id + "#full", "control", control.framework, f))
            items.append(VectorItem(control.item_id + "#title", "control", control.framework, t))
        self.index.upsert(conn, items)
        return len(controls)

    def rank(self, conn: Connection | None, vector: np.ndarray, frameworks: Collection[str],
             limit: int) -> list[tuple[ControlText, float]]:
        """The best-matching controls of the given frameworks for one text vector."""
        if not frameworks:
            return []
        pool = max(limit * 20, 100)
        hits = self.index.query(conn, vector, pool, kind="control", scopes=frameworks)
        full: dict[str, float] = {}
        title: dict[str, float] = {}
        for hit in hits:
            base, _, variant = hit.item_id.rpartition("#")
            (full if variant == "full" else title)[base] = hit.score
        if not hits:
            return []
        # A control outside the pool for one variant gets the pool's lowest score for it.
        floor_full = min(full.values(), default=0.0)
        floor_title = min(title.values(), default=0.0)
        combined = {
            base: FULL_WEIGHT * full.get(base, floor_full) + TITLE_WEIGHT * title.get(base, floor_title)
            for base in set(full) | set(title)
        }
        ranked = sorted(combined.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        out = []
        for base, score in ranked:
            _, framework, ref = base.split(":", 2)
            control = self.texts.get((framework, ref)) or ControlText(framework, ref, ref, "")
            out.append((control, score))
        return out

    def suggest(self, conn: Connection | None, text: str, frameworks: Collection[str], limit: int = 5,
                *, vector: np.ndarray | None = None) -> list[Suggestion]:
        """Top controls for a text, each with the evidence sentences closest to it."""
        if vector is None:
            vector = self.embedder.embed([text[:MAX_ANALYSED_CHARS]])[0]
        ranked = self.rank(conn, vector, frameworks, limit)
        if not ranked:
            return []
        parts = sentences(text)
        matched: list[list[str]] = [[] for _ in ranked]
        if parts:
            sentence_vectors = self.embedder.embed(parts)
            control_vectors = self.control_vectors([c for c, _ in ranked])
            sims = control_vectors @ sentence_vectors.T
            for i, row in enumerate(sims):
                best = np.argsort(-row)[:2]
                matched[i] = [parts[j] for j in sorted(best) if row[j] > 0]
        return [Suggestion(c.framework, c.ref, c.title, float(s), m)
                for (c, s), m in zip(ranked, matched, strict=True)]
