"""Measuring suggestions against a labelled set: top-1 accuracy, hit rate at 5, MRR."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studio.ai.engine import ControlCatalog

EVAL_SET = Path(__file__).resolve().parents[2] / "tests" / "data" / "ai_eval.json"


def load_eval_set(path: Path = EVAL_SET) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8"))["items"]


def evaluate(catalog: ControlCatalog, items: list[dict[str, Any]], framework: str,
             depth: int = 20) -> dict[str, float]:
    """Rank controls for every item; a correct control is any one the item lists."""
    vectors = catalog.embedder.embed([item["text"] for item in items])
    top1 = hit5 = 0
    reciprocal = 0.0
    for item, vector in zip(items, vectors, strict=True):
        ranked = [c.ref for c, _ in catalog.rank(None, vector, [framework], depth)]
        positions = [ranked.index(ref) for ref in item["controls"] if ref in ranked]
        best = min(positions) if positions else None
        if best is not None:
            top1 += best == 0
            hit5 += best < 5
            reciprocal += 1.0 / (best + 1)
    n = len(items)
    return {"items": n, "top1": top1 / n, "hit_at_5": hit5 / n, "mrr": reciprocal / n}
