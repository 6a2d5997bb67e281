"""Where an evidence-page request spends its time: samples the full app under load.

    python -m bench.profile_app [--postgres URL] [--duration 10] [--cache]

Seeds a database as bench/api_bench.py does, serves the app under uvicorn, loads it with
64 connections and samples the server with py-spy (only stacks holding the GIL, so the
shares are shares of the interpreter's time, the scarce resource of one worker). Prints
the share of samples whose stack contains each part of the pipeline (shares overlap:
a middleware's share includes everything inside it) and writes the collapsed stacks
next to the summary for flame graphs.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

from bench.api_bench import Server, load, login, postgres_database, seed

# (label, substring of a collapsed frame "function (path:line)") counted when any frame of
# the stack contains it; "leaf:" counts only stacks whose innermost frame contains it.
PARTS = [
    ("request id middleware (incl. inner)", "RequestIdMiddleware.__call__"),
    ("access log line (structlog)", "structlog/"),
    ("rate limit middleware, both (own work)", "RateLimiter.hit"),
    ("authentication middleware (JWT decode)", "_authenticate"),
    ("  of which jwt.decode", "jwt/api_jwt.py"),
    ("response cache middleware (own work)", "cache.py:"),
    ("FastAPI routing + request handling", "fastapi/routing.py"),
    ("FastAPI dependency resolution (solve_dependencies)", "solve_dependencies"),
    ("  of which the caller + project query (load_principal)", "load_principal"),
    ("thread-pool hops (anyio to_thread / run_sync)", "anyio/_backends/_asyncio.py"),
    ("handler list_evidence (incl. service)", "list_evidence"),
    ("  service list_for_project", "list_for_project"),
    ("  visible_project (authorization query)", "visible_project"),
    ("  WirePageRequest.result (driver rows -> wire)", "WirePageRequest.result"),
    ("SQLAlchemy compile (all queries)", "sqlalchemy/sql/compiler.py"),
    ("SQLAlchemy execute (queries not compiled to the driver)", "Connection.execute"),
    ("SQLAlchemy connection checkout/return (pool)", "sqlalchemy/pool/"),
    ("driver calls (psycopg; sqlite3 runs in C)", "psycopg/"),
    ("  reads on the event loop (Database.loop_read)", "loop_read"),
    ("driver value -> wire text (page columns)", "_raw_to_wire"),
    ("envelope bytes (orjson)", "envelope_bytes"),
    ("uvicorn (HTTP parsing and writing), own time", "leaf:uvicorn/protocols"),
    ("asyncio event loop and transports, own time", "leaf:asyncio/"),
    ("thread handoff (queue, locks, conditions), own time", "leaf:threading.py"),
]


def summarize(collapsed: Path) -> list[tuple[str, float]]:
    total = 0
    hits: collections.Counter[str] = collections.Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        leaf = stack.rpartition(";")[2]
        for label, needle in PARTS:
            if needle.startswith("leaf:"):
                if needle[5:] in leaf:
                    hits[label] += n
            elif needle in stack:
                hits[label] += n
    return [(label, 100.0 * hits[label] / max(total, 1)) for label, _ in PARTS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="profile on a fresh database on this PostgreSQL server")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--cache", action="store_true", help="with the response cache on")
    parser.add_argument("--bare", action="store_true", help="profile the bare app instead")
    parser.add_argument("--out", type=Path, default=Path("profile-app.txt"))
    args = parser.parse_args()
    # Installed into the same environment as this interpreter, which need not be on PATH.
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")
    work = Path(tempfile.mkdtemp(prefix="studio-profile-"))
    secret = uuid.uuid4().hex * 2
    try:
        if args.postgres:
            with postgres_database(args.postgres) as url:
                run(url, work, secret, args, py_spy)
        else:
            run(f"sqlite:///{work / 'bench.db'}", work, secret, args, py_spy)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(url: str, work: Path, secret: str, args: argparse.Namespace, py_spy: str) -> None:
    data_dir = work / "data"
    data_dir.mkdir()
    seeded = seed(url, data_dir, secret)
    env = {
        "STUDIO_DATABASE_URL": url, "STUDIO_DATA_DIR": str(data_dir), "STUDIO_SECRET_KEY": secret,
        "STUDIO_RUN_WORKERS": "false", "STUDIO_LOG_LEVEL": "INFO",
        "STUDIO_CACHE_ENABLED": "true" if args.cache else "false",
        "STUDIO_RATE_LIMIT_IP": "100000000/minute", "STUDIO_RATE_LIMIT_USER": "100000000/minute",
        "STUDIO_RATE_LIMIT_LOGIN": "100000/minute",
    }
    server = Server("profile-app", "bare_app" if args.bare else "full_app", env, work)
    try:
        token = "unused" if args.bare else login(server.base, seeded["reader"])
        target = f"{server.base}/api/v1/projects/{seeded['project_id']}/evidence?limit=20"
        headers = [f"Authorization: Bearer {token}"]
        tool = "wrk" if shutil.which("wrk") else "python"
        load(target, headers, 64, 2, tool)
        collapsed = work / "stacks.txt"
        result: dict[str, dict[str, float]] = {}
        loader = threading.Thread(target=lambda: result.setdefault(
            "load", load(target, headers, 64, args.duration + 2, tool)))
        loader.start()
        subprocess.run([py_spy, "record", "--pid", str(server.proc.pid), "--gil", "--rate", "250",
                        "--duration", str(args.duration), "--format", "raw", "--output", str(collapsed),
                        "--nonblocking"], check=True, capture_output=True)
        loader.join()
    finally:
        server.stop()
    r = result["load"]
    samples = sum(int(line.rpartition(" ")[2]) for line in collapsed.read_text().splitlines())
    # Samples are taken 250 times a second while the GIL is held: samples / 250 = seconds.
    gil_ms = samples / 250 / (r["rps"] * args.duration) * 1000
    what = "bare app" if args.bare else f"app, cache {'on' if args.cache else 'off'}"
    lines = [f"{'sqlite' if url.startswith('sqlite') else 'postgresql'}, {what}: {r['rps']:.0f} req/s "
             f"under the profiler (p50 {r['p50_ms']:.1f} ms), {gil_ms:.2f} ms of GIL time per "
             "request; share of GIL-holding samples containing:"]
    lines += [f"  {share:5.1f} %  {label}" for label, share in summarize(collapsed)]
    text = "\n".join(lines)
    print(text)
    args.out.write_text(text + "\n")
    shutil.copy(collapsed, args.out.with_suffix(".collapsed"))


def resummarize(collapsed: Path) -> str:
    """The summary of an existing collapsed-stack file."""
    return "\n".join(f"  {share:5.1f} %  {label}" for label, share in summarize(collapsed))


if __name__ == "__main__":
    main()
