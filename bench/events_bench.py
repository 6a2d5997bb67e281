"""Event backbone benchmark, one command:

    .venv/bin/python bench/events_bench.py [--quick]

Prints append throughput (1-event and 100-event transactions, hash chain and gap-free
ordering included) on SQLite and PostgreSQL, each against a baseline measured in the same
run (a bare executemany of the same rows into a copy of the events table: no lock, no
chain, no stream heads), and publish-to-handled latency p50/p99 at a steady 500 events/s
through the in-process dispatcher and the NATS transport.

PostgreSQL: $STUDIO_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres);
a database is created for the run and dropped after. NATS: $STUDIO_BENCH_NATS_URL (default
nats://127.0.0.1:4222); a uniquely named stream is created and deleted after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import MetaData, create_engine, insert, text  # noqa: E402

from studio.db.engine import Database, make_engine, utcnow  # noqa: E402
from studio.db.migrate import upgrade  # noqa: E402
from studio.events.dispatcher import Dispatcher  # noqa: E402
from studio.events.envelope import canonical_json  # noqa: E402
from studio.events.models import events as events_t  # noqa: E402
from studio.events.store import EventStore  # noqa: E402
from studio.events.transport_nats import NatsRelay, NatsWorker, connect  # noqa: E402

PG_URL = os.environ.get(
    "STUDIO_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
NATS_URL = os.environ.get("STUDIO_BENCH_NATS_URL", "nats://127.0.0.1:4222")
PAYLOAD = {
    "title": "Quarterly access review",
    "controlId": "AC-2",
    "status": "pending",
    "projectId": str(uuid.uuid4()),
    "tags": ["q3", "iam"],
}


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as d:
        yield f"sqlite:///{d}/bench.db"


@contextmanager
def postgres_url() -> Iterator[str]:
    admin = create_engine(
        PG_URL.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    name = f"studio_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_URL.rpartition('/')[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def migrated(url: str) -> Database:
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return Database(url, EventStore())


def append_rate(db: Database, per_tx: int, total: int) -> float:
    streams = [f"project:{uuid.uuid4()}" for _ in range(20)]
    started = time.perf_counter()
    for i in range(total // per_tx):
        with db.write(actor="bench") as uow:
            for k in range(per_tx):
                uow.emit("evidence.created", streams[(i + k) % len(streams)], PAYLOAD)
    return total / (time.perf_counter() - started)


def baseline_rate(db: Database, per_tx: int, total: int) -> float:
    """The same rows written with a bare executemany into an unconstrained copy of the table."""
    with db.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE bench_events AS SELECT * FROM events WHERE 1 = 0")
    copy = events_t.to_metadata(MetaData(), name="bench_events")
    data = canonical_json(PAYLOAD).decode()
    position = 0
    started = time.perf_counter()
    for _ in range(total // per_tx):
        rows = []
        for _ in range(per_tx):
            position += 1
            rows.append(
                {
                    "position": position,
                    "id": uuid.uuid4(),
                    "type": "evidence.created",
                    "stream": "s",
                    "stream_version": position,
                    "timestamp": utcnow(),
                    "source": "backend",
                    "version": "1.0",
                    "actor_id": None,
                    "organization_id": None,
                    "data": data,
                    "metadata": "{}",
                    "prev_hash": "0" * 64,
                    "hash": "0" * 64,
                }
            )
        with db.engine.begin() as conn:
            conn.execute(insert(copy), rows)
    return total / (time.perf_counter() - started)


class Clock:
    """Handler timestamps keyed by event id; the consumer of the latency runs."""

    name: ClassVar[str] = "bench_clock"
    subscriptions: ClassVar[tuple[str, ...]] = ("bench.*",)
    side_effects: ClassVar[bool] = False

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    def handle(self, uow, event) -> None:
        self.seen[str(event.id)] = time.perf_counter()

    def reset(self, conn) -> None:
        self.seen.clear()


def steady_latency(db: Database, clock: Clock, rate: int, seconds: float) -> tuple[float, float]:
    """Write one event per transaction at `rate`/s; latency = handled - committed."""
    committed: dict[str, float] = {}
    interval = 1.0 / rate
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        target = start + i * interval
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        with db.write(actor="bench") as uow:
            ev = uow.emit("bench.tick", f"bench:{i % 50}", {"i": i})
        committed[str(ev.id)] = time.perf_counter()
    deadline = time.perf_counter() + 10
    while len(clock.seen) < len(committed) and time.perf_counter() < deadline:
        time.sleep(0.01)
    latencies = sorted((clock.seen[k] - v) * 1000 for k, v in committed.items() if k in clock.seen)
    if len(latencies) < len(committed):
        print(f"    warning: {len(committed) - len(latencies)} event(s) not handled within 10 s")
    return statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]


def in_process(db: Database, rate: int, seconds: float) -> tuple[float, float]:
    clock = Clock()
    d = Dispatcher(db, [clock], poll_interval=1.0)
    db.after_commit.append(d.wake)
    d.ensure_checkpoints()
    d.start()
    try:
        return steady_latency(db, clock, rate, seconds)
    finally:
        d.stop()
        db.after_commit.remove(d.wake)


def through_nats(db: Database, rate: int, seconds: float) -> tuple[float, float]:
    suffix = uuid.uuid4().hex[:8]
    stream, prefix = f"BENCH_{suffix}", f"bench{suffix}"
    relay = NatsRelay(db, NATS_URL, stream, prefix)
    clock = Clock()
    # The worker's dispatcher is woken only by NATS messages (its poll is 60 s).
    d = Dispatcher(db, [clock], poll_interval=60)
    worker = NatsWorker(d, NATS_URL, stream, prefix, durable=f"bench-{suffix}")
    db.after_commit.append(relay.wake)
    d.ensure_checkpoints()
    try:
        relay.start()
        worker.start()
        d.start()
        if not (relay.connected.wait(10) and worker.connected.wait(10)):
            raise RuntimeError(f"cannot reach NATS at {NATS_URL}")
        time.sleep(0.3)
        return steady_latency(db, clock, rate, seconds)
    finally:
        db.after_commit.remove(relay.wake)
        worker.stop()
        relay.stop()
        d.stop()

        async def drop() -> None:
            nc = await connect(NATS_URL)
            await nc.jetstream().delete_stream(stream)
            await nc.close()

        asyncio.run(drop())


def main() -> None:
    import logging

    import structlog

    # One log line per event handled is the production behaviour; here it would measure the terminal.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller runs (smoke test of the bench)"
    )
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    seconds = 2.0 if args.quick else 6.0
    targets = {("sqlite", 100): 30_000, ("postgresql", 100): 5_000}
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at start")
    print(
        "Append throughput (events/s; hash chain + gap-free positions; baseline = bare executemany)"
    )
    print(
        f"  {'backend':<11}{'events/tx':>10}{'store':>12}{'baseline':>12}{'ratio':>8}{'target':>10}"
    )
    for backend, url_factory in (("sqlite", sqlite_url), ("postgresql", postgres_url)):
        for per_tx, total in (
            (1, 2000 if backend == "sqlite" else 1000),
            (100, 40_000 if backend == "sqlite" else 20_000),
        ):
            total = max(int(total * scale) // per_tx * per_tx, per_tx)
            with url_factory() as url:
                db = migrated(url)
                store_rate = append_rate(db, per_tx, total)
                base = baseline_rate(db, per_tx, total)
                db.dispose()
            target = targets.get((backend, per_tx))
            verdict = (
                ""
                if target is None
                else (f"{target:>7,} {'ok' if store_rate >= target else 'MISS'}")
            )
            print(
                f"  {backend:<11}{per_tx:>10}{store_rate:>12,.0f}{base:>12,.0f}{store_rate / base:>8.2f}  {verdict}"
            )
    print(
        f"\nPublish-to-handled latency at a steady 500 events/s for {seconds:.0f} s (ms; target p99 <= 50)"
    )
    print(f"  {'transport':<26}{'p50':>8}{'p99':>8}")
    runs = (
        ("in-process, sqlite", sqlite_url, in_process),
        ("in-process, postgresql", postgres_url, in_process),
        ("NATS JetStream, postgresql", postgres_url, through_nats),
    )
    for label, url_factory, fn in runs:
        with url_factory() as url:
            db = migrated(url)
            p50, p99 = fn(db, 500, seconds)
            db.dispose()
        print(f"  {label:<26}{p50:>8.1f}{p99:>8.1f}  {'ok' if p99 <= 50 else 'MISS'}")
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end")


if __name__ == "__main__":
    main()
