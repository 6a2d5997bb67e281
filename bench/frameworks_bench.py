"""Frameworks, control graph and score benchmark: one command, SQLite and (when
STUDIO_TEST_POSTGRES_URL is set) PostgreSQL.

    .venv/bin/python bench/frameworks_bench.py [--quick]

Measures: NIST MODERATE import; a synthetic 5,000-control framework import; control search;
graph queries on MODERATE with 10,000 mappings (p50/p99); score read and full recompute
for a project with 1,000 controls and 100,000 evidence items. Each figure is printed with
its target and a baseline measured in the same run on the same database (parsing the JSON
alone, a primary-key lookup, a COUNT over the project's evidence) so runs on different
machines compare by ratio.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402

from studio.bootstrap import bootstrap  # noqa: E402
from studio.cli.demo import CATALOG as MODERATE  # noqa: E402 - the baseline the package ships
from studio.db.migrate import upgrade  # noqa: E402
from studio.domains.compliance.models import (  # noqa: E402
    compliance_controls,
    compliance_projects,
    evidence_controls,
)
from studio.domains.compliance.projection import read_score, score_from_projection  # noqa: E402
from studio.domains.compliance.service import full_recompute  # noqa: E402
from studio.domains.evidence.models import evidence  # noqa: E402
from studio.domains.frameworks.models import control_mappings, controls  # noqa: E402
from studio.domains.projects.schemas import ProjectCreate  # noqa: E402
from studio.domains.users.service import create_organization, create_user  # noqa: E402
from studio.permissions import Role  # noqa: E402
from studio.settings import Settings  # noqa: E402

TARGETS = {"import": 2.0, "query_p99_ms": 20.0, "score_read_ms": 5.0, "recompute": 2.0}
QUICK = "--quick" in sys.argv


def synthetic_catalog(n_controls: int, title: str) -> bytes:
    """An OSCAL catalog with n controls: families of 50 base controls, every third with an enhancement."""
    groups, made, g = [], 0, 0
    while made < n_controls:
        g += 1
        fam = f"f{g}"
        ctrls = []
        while made < n_controls and len(ctrls) < 50:
            i = len(ctrls) + 1
            cid = f"{fam}-{i}"
            ctrl: dict[str, Any] = {
                "id": cid, "title": f"Synthetic control {cid}",
                "params": [{"id": f"{cid}_prm_1", "label": "frequency"}],
                "props": [{"name": "label", "value": cid.upper()}],
                "parts": [{"id": f"{cid}_smt", "name": "statement",
                           "prose": f"Review the {fam} safeguards every {{{{ insert: param, {cid}_prm_1 }}}}."},
                          {"id": f"{cid}_gdn", "name": "guidance", "prose": "Guidance text " * 20}],
                "links": [{"href": f"#{fam}-{max(1, i - 1)}", "rel": "related"}],
            }
            made += 1
            if i % 3 == 0 and made < n_controls:
                ctrl["controls"] = [{"id": f"{cid}.1", "title": f"Enhancement of {cid}",
                                     "props": [{"name": "label", "value": f"{cid.upper()}(1)"}]}]
                made += 1
            ctrls.append(ctrl)
        groups.append({"id": fam, "title": f"Family {g}", "controls": ctrls})
    return json.dumps({"catalog": {"uuid": str(uuid.uuid4()), "metadata": {"title": title, "version": "1"},
                                   "groups": groups}}).encode()


def timed(fn, *args, **kwargs) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def run(url: str, label: str) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="fwbench"))
    settings = Settings(database_url=url, data_dir=tmp, secret_key="bench-secret-key-0123456789-abcdefghijklmnop",
                        log_level="WARNING", rate_limit_enabled=False, cache_enabled=False)
    c = bootstrap(settings)
    upgrade(c.db.engine)
    rng = random.Random(7)
    svc = c.frameworks

    # -- imports --------------------------------------------------------------------------
    data = MODERATE.read_bytes()
    base, _ = timed(json.loads, data)
    t, result = timed(svc.import_file, None, MODERATE.name, data, key="moderate")
    rows.append(("MODERATE import (287 controls)", f"{t:.3f} s", f"<= {TARGETS['import']} s",
                 f"json.loads alone {base * 1000:.0f} ms ({t / base:.0f}x)"))
    moderate_version = uuid.UUID(result["versionId"])
    big = synthetic_catalog(5000, "Synthetic 5000")
    base, _ = timed(json.loads, big)
    t, big_result = timed(svc.import_file, None, "synthetic.json", big, key="synthetic")
    rows.append(("synthetic import (5,000 controls)", f"{t:.3f} s", f"<= {TARGETS['import']} s",
                 f"json.loads alone {base * 1000:.0f} ms ({t / base:.0f}x)"))
    big_version = uuid.UUID(big_result["versionId"])

    with c.db.read() as conn:
        mod_ids = list(conn.execute(select(controls.c.id).where(controls.c.version_id == moderate_version,
                                                                controls.c.kind == "control")).scalars())
        big_ids = list(conn.execute(select(controls.c.id).where(controls.c.version_id == big_version,
                                                                controls.c.kind == "control")).scalars())
        mod_refs = list(conn.execute(select(controls.c.ref).where(controls.c.version_id == moderate_version,
                                                                  controls.c.kind == "control")).scalars())

    # -- 10,000 mappings between MODERATE and the synthetic framework -------------------------
    now = dt.datetime.now(dt.UTC)
    pairs = set()
    while len(pairs) < 10_000:
        pairs.add((rng.choice(mod_ids), rng.choice(big_ids), rng.choice(("equal", "subset", "intersects", "related"))))
    with c.db.write() as uow:
        uow.conn.execute(insert(control_mappings), [
            {"id": uuid.uuid4(), "source_id": s, "target_id": t_, "relation": r, "strength": rng.randint(0, 10),
             "origin": "imported", "note": "", "created_by": None, "created_at": now} for s, t_, r in pairs])

    # A project on MODERATE with evidence, and one on the synthetic framework, for coverage queries.
    with c.db.write(actor="bench") as uow:
        org = create_organization(uow, f"Bench {uuid.uuid4().hex[:6]}")
        admin_row = create_user(uow, org_id=org["id"], email=f"a{uuid.uuid4().hex[:6]}@bench.example",
                                name="bench", role=Role.ADMIN, password_hash="x")
    from studio.domains.users.repository import load_principal
    from studio.principal import AuthInfo

    with c.db.read() as conn:
        admin = load_principal(conn, AuthInfo(admin_row["id"], org["id"], "jwt"))
    mod_project = uuid.UUID(c.projects.create(admin, ProjectCreate(name="Moderate", framework="m"))["id"])
    big_project = uuid.UUID(c.projects.create(admin, ProjectCreate(name="Synthetic", framework="s"))["id"])
    c.compliance.move_version(admin, mod_project, moderate_version)
    c.compliance.move_version(admin, big_project, big_version)
    ev_ids = _bulk_evidence(c, org["id"], mod_project, mod_refs, 2_000, rng)
    _materialize(c, mod_project)
    _analyze(c)

    def sample(name: str, fn, n: int = 50 if QUICK else 300) -> None:
        times = []
        for _ in range(n):
            t, _ = timed(fn)
            times.append(t)
        p50, p99 = percentiles(times)
        rows.append((name, f"p50 {p50:.1f} ms, p99 {p99:.1f} ms", f"p99 <= {TARGETS['query_p99_ms']:.0f} ms",
                     f"pk lookup p99 {pk_p99:.2f} ms ({p99 / pk_p99:.0f}x)"))

    pk_times = []
    for _ in range(300):
        cid = rng.choice(mod_ids)
        with c.db.read() as conn:
            t, _ = timed(lambda: conn.execute(select(controls.c.id).where(controls.c.id == cid)).first())  # noqa: B023
        pk_times.append(t)
    pk_p99 = percentiles(pk_times)[1]
    sample("neighbourhood of a control", lambda: svc.neighbourhood(None, rng.choice(mod_ids)))
    sample("evidence coverage (direct + 2 hops)", lambda: c.compliance.evidence_coverage(admin, rng.choice(ev_ids)))
    sample("B coverage from A evidence, one B control", lambda: c.compliance.mapped_coverage(
        admin, big_project, control_id=rng.choice(big_ids)))
    t_all, everything = timed(c.compliance.mapped_coverage, admin, big_project)
    n_pairs = sum(len(x["sources"]) for x in everything)
    rows.append(("B coverage from A evidence, whole project", f"{t_all * 1000:.0f} ms",
                 "(not a target: one answer)", f"{len(everything):,} B controls, {n_pairs:,} source pairs"))
    sample("search 5,000 controls (2 words)", lambda: svc.controls(None, "synthetic", search=rng.choice(
        ["review f7", "enhancement f3", "guidance f12", "safeguards frequency"]), limit=50))

    # -- score: 1,000 controls x 100,000 evidence --------------------------------------------
    thousand = synthetic_catalog(1000, "Synthetic 1000")
    r1000 = svc.import_file(None, "s1000.json", thousand, key="s1000")
    score_project = uuid.UUID(c.projects.create(admin, ProjectCreate(name="Scored", framework="s"))["id"])
    c.compliance.move_version(admin, score_project, uuid.UUID(r1000["versionId"]))
    with c.db.read() as conn:
        refs1000 = list(conn.execute(select(controls.c.ref).where(
            controls.c.version_id == uuid.UUID(r1000["versionId"]), controls.c.kind == "control")).scalars())
    n_evidence = 20_000 if QUICK else 100_000
    t_load, _ = timed(_bulk_evidence, c, org["id"], score_project, refs1000, n_evidence, rng)
    _materialize(c, score_project)
    _analyze(c)
    today = dt.datetime.now(dt.UTC).date()
    reads, computed = [], []
    for _ in range(200):
        with c.db.read() as conn:
            t, result = timed(read_score, conn, score_project, today)
        reads.append(t)
        with c.db.read() as conn:
            t, _ = timed(score_from_projection, conn, score_project, today)
        computed.append(t)
    base_reads = []
    for _ in range(200):
        with c.db.read() as conn:
            t, _ = timed(lambda: conn.execute(select(compliance_projects).where(  # noqa: B023
                compliance_projects.c.project_id == score_project)).first())
        base_reads.append(t)
    p50, p99 = percentiles(reads)
    b50, b99 = percentiles(base_reads)
    rows.append((f"score read (1,000 controls, {n_evidence:,} evidence)", f"p50 {p50:.2f} ms, p99 {p99:.2f} ms",
                 f"<= {TARGETS['score_read_ms']:.0f} ms",
                 f"pk lookup p50 {b50:.2f} / p99 {b99:.2f} ms; score {result['score']}"))
    p50, p99 = percentiles(computed)
    rows.append(("score recomputed from per-control rows (after an expiry)", f"p50 {p50:.2f} ms, p99 {p99:.2f} ms",
                 f"<= {TARGETS['score_read_ms']:.0f} ms", f"pk lookup p50 {b50:.2f} ms ({p50 / b50:.0f}x)"))
    with c.db.read() as conn:
        t_count, _ = timed(lambda: conn.execute(select(func.count()).select_from(evidence).where(
            evidence.c.project_id == score_project)).scalar())
        t_full, full = timed(full_recompute, conn, score_project, today)
    assert full["score"] == result["score"], (full["score"], result["score"])
    rows.append(("full recompute from source tables", f"{t_full:.3f} s", f"<= {TARGETS['recompute']} s",
                 f"COUNT(*) of the evidence {t_count * 1000:.0f} ms ({t_full / max(t_count, 1e-6):.0f}x)"))
    print(f"  ({label}: loaded {n_evidence:,} evidence in {t_load:.1f} s)")
    c.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return rows


def _bulk_evidence(c, org_id, project_id, refs, n, rng) -> list[uuid.UUID]:
    """Approved evidence straight into the tables (the API path is measured elsewhere)."""
    now = dt.datetime.now(dt.UTC)
    today = now.date()
    ids = []
    with c.db.write() as uow:
        batch, links = [], []
        for i in range(n):
            eid = uuid.uuid4()
            ids.append(eid)
            roll = rng.random()
            expires = None if roll < 0.5 else today + dt.timedelta(days=rng.randint(-400, 400))
            batch.append({"id": eid, "organization_id": org_id, "project_id": project_id, "title": f"e{i}",
                          "description": "", "control_id": rng.choice(refs).upper(),
                          "status": "approved" if rng.random() < 0.8 else "pending", "quality_score": None,
                          "effective_date": None, "expires_at": expires, "created_by": None,
                          "created_at": now, "updated_at": now, "version": 1})
            if rng.random() < 0.2:
                links.append({"evidence_id": eid, "control_ref": rng.choice(refs), "project_id": project_id,
                              "created_at": now})
            if len(batch) == 5000:
                uow.conn.execute(insert(evidence), batch)
                batch = []
        if batch:
            uow.conn.execute(insert(evidence), batch)
        seen = set()
        unique = [lk for lk in links if (lk["evidence_id"], lk["control_ref"]) not in seen
                  and not seen.add((lk["evidence_id"], lk["control_ref"]))]
        for start in range(0, len(unique), 5000):
            uow.conn.execute(insert(evidence_controls), unique[start:start + 5000])
    return ids


def _analyze(c) -> None:
    """Refresh planner statistics after bulk loads, as autovacuum / a steady state would."""
    with c.db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def _materialize(c, project_id) -> None:
    """Fill the projection's per-control table from the source tables (what a replay ends with)."""
    today = dt.datetime.now(dt.UTC).date()
    with c.db.write() as uow:
        full = full_recompute(uow.conn, project_id, today)
        version = uow.conn.execute(text("SELECT framework_version_id FROM projects WHERE id = :p"),
                                   {"p": project_id if c.db.dialect == "postgresql" else project_id.hex}).scalar()
        uow.conn.execute(compliance_projects.delete().where(compliance_projects.c.project_id == project_id))
        uow.conn.execute(insert(compliance_projects).values(
            project_id=project_id, framework_version_id=uuid.UUID(str(version)), position=0))
        uow.conn.execute(compliance_controls.delete().where(compliance_controls.c.project_id == project_id))
        rows = [{"project_id": project_id, "control_ref": ref, "approved": cov.approved,
                 "open_ended": cov.open_ended, "max_expiry": cov.max_expiry} for ref, cov in full["coverage"].items()]
        if rows:
            uow.conn.execute(insert(compliance_controls), rows)
        # What the projection stores after its last event for the project.
        result = score_from_projection(uow.conn, project_id, today)
        uow.conn.execute(compliance_projects.update().where(compliance_projects.c.project_id == project_id).values(
            score=result["score"], scored_on=today, summary=json.dumps(result),
            valid_until=dt.date.fromisoformat(result["validUntil"]) if result["validUntil"] else None))


def main() -> None:
    results: dict[str, list[tuple[str, str, str, str]]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="fwbench-sqlite"))
    try:
        print("SQLite ...", flush=True)
        results["SQLite"] = run(f"sqlite:///{tmp / 'bench.db'}", "SQLite")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    pg = os.environ.get("STUDIO_TEST_POSTGRES_URL")
    if pg:
        name = f"studio_fwbench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(pg.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            print("PostgreSQL ...", flush=True)
            results["PostgreSQL"] = run(f"{pg.rpartition('/')[0]}/{name}", "PostgreSQL")
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    for backend, rows in results.items():
        print(f"\n### {backend}\n")
        print("| measurement | result | target | baseline (same run) |")
        print("|---|---|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
