"""API benchmark: the full Studio pipeline against a bare Starlette app, same server, same rows.

    python bench/api_bench.py [--postgres URL] [--duration 10] [--connections 64]

For SQLite (always) and PostgreSQL (with --postgres or STUDIO_TEST_POSTGRES_URL; the
database is created and dropped by the run), it seeds an organization, users, a project
and 1,200 evidence rows, then serves under uvicorn with `studio serve`'s options
(studio/serving.py: httptools, uvloop; one process each, 127.0.0.1):

  app        studio.app.create_app, response cache off: authentication, rate limits,
             authorization, validation and envelope on every request (the honest figure)
  app+cache  the same with the response cache on (repeated identical GETs hit it)
  bare       Starlette, one raw sqlite3/psycopg connection, no ORM, same page, same JSON

and loads GET /api/v1/projects/{id}/evidence?limit=20 (--limit) with `wrk` (or
bench/loadgen.py when wrk is missing), 64 connections, 10 s each, alternating app / bare /
app+cache twice. With --baseline-tree DIR, the app of another checkout (for example the
previous release, `git worktree add DIR REV`) is served and loaded in the same rounds.
Then it times logins with the configured Argon2id parameters against argon2-cffi's
defaults. Everything is printed; the ratios are app / bare.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from studio.http.serving import UVICORN_FLAGS  # noqa: E402  (the flags `studio serve` runs with)

PASSWORD = "bench password 0123456789"
EVIDENCE_ROWS = 1200
TARGET = 0.5
# Argon2id as argon2-cffi ships it (RFC 9106's second recommendation): 64 MiB, t=3, p=4.
CFFI_DEFAULTS = {"STUDIO_ARGON2_MEMORY_KIB": "65536", "STUDIO_ARGON2_TIME_COST": "3",
                 "STUDIO_ARGON2_PARALLELISM": "4"}


# -- databases ---------------------------------------------------------------------------
@contextmanager
def postgres_database(server_url: str):
    """A fresh database on the given server, dropped afterwards."""
    from sqlalchemy import create_engine, text

    base = server_url.rpartition("/")[0]
    admin = create_engine(f"{base}/postgres".replace("postgresql://", "postgresql+psycopg://"),
                          isolation_level="AUTOCOMMIT")
    name = f"studio_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed(database_url: str, data_dir: Path, secret: str) -> dict[str, Any]:
    """Migrate and seed: an organization, an admin, an auditor member of one project with
    EVIDENCE_ROWS evidence rows, and two users for the login timings."""
    import datetime as dt

    from argon2 import PasswordHasher
    from sqlalchemy import insert

    from studio.bootstrap import bootstrap
    from studio.db.migrate import upgrade
    from studio.domains.evidence.models import evidence
    from studio.domains.projects.schemas import MemberAdd, ProjectCreate
    from studio.domains.users.repository import load_principal
    from studio.domains.users.service import create_organization, create_user
    from studio.permissions import ProjectRole, Role
    from studio.principal import AuthInfo
    from studio.settings import Settings

    settings = Settings(database_url=database_url, data_dir=data_dir, secret_key=secret,
                        log_level="WARNING")
    c = bootstrap(settings)
    try:
        upgrade(c.db.engine)
        owasp_hash = c.passwords.hash(PASSWORD)
        with c.db.write(actor="bench") as uow:
            org = create_organization(uow, "Bench Org")
            admin = create_user(uow, org_id=org["id"], email="admin@bench.example", name="Bench Admin",
                                role=Role.ADMIN, password_hash=owasp_hash)
            auditor = create_user(uow, org_id=org["id"], email="auditor@bench.example",
                                  name="Bench Auditor", role=Role.AUDITOR, password_hash=owasp_hash)
            create_user(uow, org_id=org["id"], email="login-owasp@bench.example", name="Login OWASP",
                        role=Role.VIEWER, password_hash=owasp_hash)
            create_user(uow, org_id=org["id"], email="login-defaults@bench.example",
                        name="Login Defaults", role=Role.VIEWER,
                        password_hash=PasswordHasher().hash(PASSWORD))
        with c.db.read() as conn:
            principal = load_principal(conn, AuthInfo(admin["id"], org["id"], "bench"))
        assert principal is not None
        project = c.projects.create(principal, ProjectCreate(name="Bench project", framework="SOC 2"))
        project_id = uuid.UUID(project["id"])
        c.projects.add_member(principal, project_id,
                              MemberAdd(userId=auditor["id"], role=ProjectRole.AUDITOR))
        start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        statuses = ("pending", "in_review", "approved", "rejected")
        rows = [{
            "id": uuid.uuid4(), "organization_id": org["id"], "project_id": project_id,
            "title": f"Evidence {i:04d}: quarterly access review export",
            "description": "Export of the user access review with the approver's sign-off. " * 3,
            "control_id": f"AC-{i % 25 + 1}", "status": statuses[i % 4],
            "quality_score": float(i % 101) if i % 3 else None,
            "effective_date": (start + dt.timedelta(days=i % 300)).date(),
            "expires_at": (start + dt.timedelta(days=365 + i % 300)).date() if i % 2 else None,
            "created_by": admin["id"], "created_at": start + dt.timedelta(minutes=i),
            "updated_at": start + dt.timedelta(minutes=i, seconds=30), "version": 1,
        } for i in range(EVIDENCE_ROWS)]
        with c.db.write(actor="bench") as uow:
            uow.conn.execute(insert(evidence), rows)
            uow.touch(org["id"])
        return {"project_id": str(project_id), "reader": "auditor@bench.example"}
    finally:
        c.close()


# -- servers -----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One uvicorn process serving one factory of bench/servers.py."""

    def __init__(self, name: str, factory: str, env: dict[str, str], log_dir: Path,
                 tree: Path = ROOT):
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", f"bench.servers:{factory}", "--factory",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
             *UVICORN_FLAGS],
            cwd=tree, env={**os.environ, **env, "PYTHONPATH": str(tree)}, stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} server exited; see {self.log_path}:\n"
                                 + self.log_path.read_text()[-3000:])
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name} server did not start; see {self.log_path}") from None
                time.sleep(0.2)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def http_json(url: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=30) as r:
        return json.loads(r.read())


def login(base: str, email: str) -> str:
    reply = http_json(f"{base}/api/v1/auth/login", {"email": email, "password": PASSWORD})
    return reply["data"]["accessToken"]


# -- load --------------------------------------------------------------------------------
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def load(url: str, headers: list[str], connections: int, duration: float, tool: str) -> dict[str, float]:
    if tool == "wrk":
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", "--timeout", "10s"]
        for h in headers:
            cmd += ["-H", h]
        out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        return {
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            "p50_ms": _ms(re.search(r"\s50%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
            "p99_ms": _ms(re.search(r"\s99%\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
            "errors": (int(bad.group(1)) if bad else 0)
            + (sum(int(x) for x in errors.groups()) if errors else 0),
        }
    cmd = [sys.executable, "-m", "bench.loadgen", url, "--connections", str(connections),
           "--duration", str(duration)]
    for h in headers:
        cmd += ["-H", h]
    return json.loads(subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout)


# -- the run -----------------------------------------------------------------------------
def bench_backend(label: str, database_url: str, work: Path, args: argparse.Namespace,
                  tool: str, secret: str) -> dict[str, Any]:
    data_dir = work / label
    data_dir.mkdir()
    print(f"\n== {label}: seeding {EVIDENCE_ROWS} evidence rows", flush=True)
    seeded = seed(database_url, data_dir, secret)
    env = {
        "STUDIO_DATABASE_URL": database_url, "STUDIO_DATA_DIR": str(data_dir),
        "STUDIO_SECRET_KEY": secret, "STUDIO_RUN_WORKERS": "false", "STUDIO_LOG_LEVEL": "INFO",
        "STUDIO_ACCESS_TOKEN_TTL_SECONDS": "7200",
        # Limits stay on (their cost is part of the pipeline) but far above what a run sends.
        "STUDIO_RATE_LIMIT_IP": "100000000/minute", "STUDIO_RATE_LIMIT_USER": "100000000/minute",
        "STUDIO_RATE_LIMIT_LOGIN": "100000/minute",
    }
    path = f"/api/v1/projects/{seeded['project_id']}/evidence?limit={args.limit}"
    result: dict[str, Any] = {"phases": {}}
    kinds = [("app", "full_app", {"STUDIO_CACHE_ENABLED": "false"}, ROOT),
             ("bare", "bare_app", {}, ROOT),
             ("app+cache", "full_app", {"STUDIO_CACHE_ENABLED": "true"}, ROOT)]
    if args.baseline_tree:
        # The same app from another checkout (same schema), served beside this one.
        kinds.insert(1, ("baseline", "full_app", {"STUDIO_CACHE_ENABLED": "false"}, args.baseline_tree))
    names = [kind[0] for kind in kinds]
    with ExitStack() as stack:
        servers = {}
        for name, factory, extra, tree in kinds:
            server = Server(f"{label}-{name}", factory, {**env, **extra}, work, tree)
            stack.callback(server.stop)
            servers[name] = server
        token = login(servers["app"].base, seeded["reader"])
        headers = [f"Authorization: Bearer {token}"]
        full = http_json(servers["app"].base + path, token=token)["data"]
        bare = http_json(servers["bare"].base + path)
        same = full == bare and len(full["items"]) == args.limit
        if "baseline" in servers:
            same = same and http_json(servers["baseline"].base + path, token=token)["data"] == full
        print(f"   same {args.limit}-item page from {', '.join(names)}: {'yes' if same else 'NO'}", flush=True)
        if not same:
            raise SystemExit("the apps disagree on the page; fix bench/servers.py first")
        for server in servers.values():  # warm-up: imports, pools, caches, JIT-free
            load(server.base + path, headers, args.connections, 2, tool)
        for round_no in range(1, args.rounds + 1):
            for name in names:
                cpu_before = servers[name].cpu_seconds()
                r = load(servers[name].base + path, headers, args.connections, args.duration, tool)
                r["cpu_ms"] = (servers[name].cpu_seconds() - cpu_before) * 1000 / max(1, r["requests"])
                result["phases"].setdefault(name, []).append(r)
                print(f"   round {round_no} {name:<10} {r['rps']:9.0f} req/s   p50 {r['p50_ms']:7.2f} ms"
                      f"   p99 {r['p99_ms']:7.2f} ms   server CPU {r['cpu_ms']:5.2f} ms/req"
                      f"   errors {int(r['errors'])}", flush=True)
                if r["errors"]:
                    raise SystemExit(f"{name} answered errors under load; see {servers[name].log_path}")
        if args.logins:
            result["logins"] = bench_logins(env, work, label, args.logins)
    return result


def bench_logins(env: dict[str, str], work: Path, label: str, count: int) -> dict[str, Any]:
    """Sequential logins over HTTP, and hashing alone, for both parameter sets."""
    from argon2 import PasswordHasher

    from studio.domains.auth.security import Passwords
    from studio.settings import Settings

    s = Settings()
    owasp = Passwords(s.argon2_memory_kib, s.argon2_time_cost, s.argon2_parallelism)._hasher
    out: dict[str, Any] = {}
    for name, hasher, extra, email in (
        ("owasp", owasp, {}, "login-owasp@bench.example"),
        ("argon2-cffi defaults", PasswordHasher(), CFFI_DEFAULTS, "login-defaults@bench.example"),
    ):
        started = time.perf_counter()
        for _ in range(count):
            hasher.hash(PASSWORD)
        hash_ms = (time.perf_counter() - started) * 1000 / count
        server = Server(f"{label}-login-{name.split()[0]}", "full_app",
                        {**env, "STUDIO_CACHE_ENABLED": "false", **extra}, work)
        try:
            login(server.base, email)  # warm-up
            times = []
            for _ in range(count):
                started = time.perf_counter()
                login(server.base, email)
                times.append((time.perf_counter() - started) * 1000)
        finally:
            server.stop()
        params = f"m={hasher.memory_cost // 1024} MiB, t={hasher.time_cost}, p={hasher.parallelism}"
        out[name] = {"params": params, "hash_ms": hash_ms, "login_p50_ms": statistics.median(times),
                     "login_mean_ms": statistics.fmean(times)}
        print(f"   login {name:<22} ({params}): hash {hash_ms:6.1f} ms   "
              f"login p50 {statistics.median(times):6.1f} ms   mean {statistics.fmean(times):6.1f} ms",
              flush=True)
    return out


def summarize(results: dict[str, dict[str, Any]]) -> None:
    print("\n== summary (mean of rounds; ratio = app / bare, target >= "
          f"{TARGET})")
    for label, result in results.items():
        phases = result["phases"]
        mean = {name: statistics.fmean(r["rps"] for r in runs) for name, runs in phases.items()}
        p50 = {name: statistics.median(r["p50_ms"] for r in runs) for name, runs in phases.items()}
        p99 = {name: statistics.median(r["p99_ms"] for r in runs) for name, runs in phases.items()}
        cpu = {name: statistics.fmean(r["cpu_ms"] for r in runs) for name, runs in phases.items()}
        for name in phases:
            print(f"   {label:<10} {name:<10} {mean[name]:9.0f} req/s   p50 {p50[name]:7.2f} ms"
                  f"   p99 {p99[name]:7.2f} ms   server CPU {cpu[name]:5.2f} ms/req")
        ratio = mean["app"] / mean["bare"]
        per_round = ", ".join(f"{a['rps'] / b['rps']:.2f}" for a, b in zip(phases["app"], phases["bare"], strict=True))
        verdict = "meets" if ratio >= TARGET else "MISSES"
        print(f"   {label:<10} ratio app/bare {ratio:.2f} (rounds: {per_round}) {verdict} the target;"
              f" app+cache/bare {mean['app+cache'] / mean['bare']:.2f}")
        if "baseline" in phases:
            per_round = ", ".join(f"{a['rps'] / b['rps']:.2f}" for a, b in
                                  zip(phases["app"], phases["baseline"], strict=True))
            print(f"   {label:<10} ratio app/baseline {mean['app'] / mean['baseline']:.2f} (rounds: {per_round});"
                  f" CPU per request app {cpu['app']:.2f} ms, baseline {cpu['baseline']:.2f} ms")
        print(f"   {label:<10} CPU-cost ratio bare/app {cpu['bare'] / cpu['app']:.2f} (the throughput ratio "
              "on a core of its own); app+cache "
              f"{cpu['bare'] / cpu['app+cache']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("STUDIO_TEST_POSTGRES_URL"),
                        help="PostgreSQL server URL (default STUDIO_TEST_POSTGRES_URL); a database "
                             "is created on it and dropped afterwards")
    parser.add_argument("--no-sqlite", action="store_true", help="only PostgreSQL")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load phase")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--logins", type=int, default=10, help="logins per parameter set (0: skip)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--limit", type=int, default=20, help="items per evidence page")
    parser.add_argument("--baseline-tree", type=Path,
                        help="another checkout of Studio (same schema): its app is loaded beside this one "
                             "in every round, for a side-by-side before/after")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    tool = args.loadgen
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    print(f"machine: {os.cpu_count()} CPUs, {cpu}; python {sys.version.split()[0]}; load generator: {tool}"
          f"; {args.connections} connections, {args.duration:g} s per phase, {args.rounds} rounds")

    work = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    secret = uuid.uuid4().hex * 2
    results: dict[str, dict[str, Any]] = {}
    try:
        if not args.no_sqlite:
            results["sqlite"] = bench_backend("sqlite", f"sqlite:///{work / 'bench.db'}", work, args,
                                              tool, secret)
        if args.postgres:
            with postgres_database(args.postgres) as url:
                results["postgresql"] = bench_backend("postgresql", url, work, args, tool, secret)
        else:
            print("\n(PostgreSQL skipped: pass --postgres URL or set STUDIO_TEST_POSTGRES_URL)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summarize(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
