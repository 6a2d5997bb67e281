"""Measuring suggestions against a labelled set: top-1 accuracy, hit rate at 5, MRR.

What is measured is what users get: the catalog is imported with the frameworks service
(as `studio frameworks import` does), and controls are ranked by the AI service's own
catalog over its database-backed vector index (`ai.catalog`, with a read connection).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from studio.ai.engine import ControlCatalog
from studio.ai.quality import score_quality

EVAL_SET = Path(__file__).resolve().parents[2] / "tests" / "data" / "ai_eval.json"
# The NIST SP 800-53 rev5 MODERATE baseline the package ships (studio/demo_data); the
# evaluation set's labels are its controls.
CATALOG = (Path(__file__).resolve().parents[1] / "demo_data"
           / "NIST_SP-800-53_rev5_MODERATE-baseline-resolved-profile_catalog-min.json")
FRAMEWORK = "nist-800-53-moderate"


def load_eval_set(path: Path = EVAL_SET) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["items"]
    return items


def evaluate(catalog: ControlCatalog, conn: Connection, items: list[dict[str, Any]], framework: str,
             depth: int = 20) -> dict[str, float]:
    """Rank controls for every item; a correct control is any one the item lists."""
    vectors = catalog.embedder.embed([item["text"] for item in items])
    top1 = hit5 = 0
    reciprocal = 0.0
    for item, vector in zip(items, vectors, strict=True):
        ranked = [c.ref for c, _ in catalog.rank(conn, vector, [framework], depth)]
        positions = [ranked.index(ref) for ref in item["controls"] if ref in ranked]
        best = min(positions) if positions else None
        if best is not None:
            top1 += best == 0
            hit5 += best < 5
            reciprocal += 1.0 / (best + 1)
    n = len(items)
    return {"items": n, "top1": top1 / n, "hit_at_5": hit5 / n, "mrr": reciprocal / n}


def quality_separation(catalog: ControlCatalog, items: list[dict[str, Any]], framework: str,
                       floor: float, ceiling: float) -> dict[str, float]:
    """Quality scores of items people approved vs rejected, each linked to its first control.

    `pairwise` is the share of (approved, rejected) pairs where the approved item scores
    higher (the ROC AUC): 0.5 is chance, 1.0 a perfect separation.
    """
    vectors = catalog.embedder.embed([item["text"] for item in items])
    controls = [catalog.texts[(framework, item["controls"][0])] for item in items]
    control_vectors = catalog.control_vectors(controls)
    scores: dict[str, list[float]] = {"approved": [], "rejected": []}
    for item, v, c, cv in zip(items, vectors, controls, control_vectors, strict=True):
        score, _ = score_quality(text=item["text"], similarity=float(v @ cv), control=c.ref,
                                 effective=None, expires=None, duplicate_of=None,
                                 floor=floor, ceiling=ceiling)
        scores[item["review"]].append(score)
    approved, rejected = scores["approved"], scores["rejected"]
    wins = sum((a > r) + 0.5 * (a == r) for a in approved for r in rejected)
    return {"approved_mean": sum(approved) / len(approved), "rejected_mean": sum(rejected) / len(rejected),
            "approved_min": min(approved), "rejected_max": max(rejected),
            "pairwise": wins / (len(approved) * len(rejected))}
