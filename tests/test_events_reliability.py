"""Ordering and crash behaviour: concurrent writers with a tailing reader, kill -9 of a
worker mid-batch, a process killed between a change and its event (transactional outbox)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from studio.errors import VersionConflict
from studio.events.dispatcher import dead_letters
from tests.events_support import EFFECTS_DDL, emit
from tests.timing_support import wait_until

ROOT = Path(__file__).resolve().parents[1]


def test_concurrent_writers_and_a_tailing_reader_miss_nothing(container, backend):
    db, store = container.db, container.store
    writers, per_writer = (8, 40) if backend == "postgres" else (4, 60)
    written: list[uuid.UUID] = []
    lock = threading.Lock()
    done = threading.Event()

    def write(w: int) -> None:
        for i in range(per_writer):
            with db.write(actor="w") as uow:
                evs = [
                    uow.emit("load.tick", f"writer-{w}-{i % 3}", {"w": w, "i": i, "k": k})
                    for k in range(1 + i % 3)
                ]
            with lock:
                written.extend(e.id for e in evs)

    seen: list[int] = []
    seen_ids: list[uuid.UUID] = []

    def tail() -> None:
        last = 0
        while True:
            finished = done.is_set()
            with db.read() as conn:
                batch = store.read(conn, after=last, limit=1000)
            for ev in batch:
                seen.append(ev.position)
                seen_ids.append(ev.id)
            if batch:
                last = batch[-1].position
            elif finished:
                return

    reader = threading.Thread(target=tail)
    reader.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    reader.join()
    with db.read() as conn:
        head = store.head_position(conn)
    assert seen == list(range(1, head + 1)), "the tailing reader skipped or repeated a position"
    assert set(written) <= set(seen_ids) and len(seen_ids) == len(set(seen_ids))


def test_two_writers_at_the_same_stream_version_exactly_one_wins(container):
    db = container.db
    emit(db, "s.created", "contended")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def write() -> None:
        barrier.wait()
        try:
            with db.write() as uow:
                uow.emit("s.changed", "contended", {}, expected_version=1)
            outcomes.append("won")
        except VersionConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=write) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "won"]


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.event_worker_script", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _finish(proc: subprocess.Popen, sig: int | None = None) -> int:
    """Signal (if given and still running), reap, and close the pipe."""
    if sig is not None and proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(30)
    finally:
        proc.stdout.close()


def _wait_line(proc: subprocess.Popen, predicate, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"process ended (rc={proc.wait()}) before the expected line")
        if predicate(line.strip()):
            return line.strip()
    raise AssertionError("timed out waiting for the subprocess")


@pytest.mark.slow
def test_worker_killed_mid_batch_then_restarted_handles_everything_once(container):
    db = container.db
    with db.write() as uow:
        uow.conn.execute(text(EFFECTS_DDL))
    emit(db, "work.item", "a", 150)
    emit(db, "work.item", "b", 150)
    first = _spawn("worker", db.url)
    # kill inside the second batch of 50: 70 is handled but not yet committed
    _wait_line(first, lambda line: line == "handling 70")
    _finish(first, signal.SIGKILL)
    with db.read() as conn:
        committed = conn.execute(text("SELECT count(*) FROM test_effects")).scalar_one()
    # batches commit whole: the batch being handled at the kill left no effect behind
    assert committed % 50 == 0 and 50 <= committed < 300
    second = _spawn("worker", db.url)
    _wait_line(second, lambda line: line == "drained", timeout=60)
    assert _finish(second) == 0
    with db.read() as conn:
        effects = conn.execute(
            text("SELECT count(*), count(DISTINCT event_id) FROM test_effects")
        ).one()
        acks = conn.execute(
            text("SELECT count(*) FROM event_acks WHERE consumer = 'effect_counter'")
        ).scalar_one()
        assert dead_letters(conn) == []
    assert tuple(effects) == (300, 300) and acks == 300


@pytest.mark.parametrize("stage", ["after_change", "after_append"])
def test_process_killed_between_change_and_commit_leaves_neither(container, stage):
    name = f"crash-{uuid.uuid4().hex[:8]}"
    proc = _spawn("outbox", container.db.url, name, stage)
    _wait_line(proc, lambda line: line in ("changed", "appended"))
    _finish(proc, signal.SIGKILL)
    with container.db.read() as conn:
        orgs = conn.execute(
            text("SELECT count(*) FROM organizations WHERE name = :n"), {"n": name}
        ).scalar_one()
        events = conn.execute(
            text(
                "SELECT count(*) FROM events WHERE type = 'organization.created' "
                "AND data LIKE :n"
            ),
            {"n": f"%{name}%"},
        ).scalar_one()
    assert (orgs, events) == (0, 0)
    # and the same program left alone commits both
    done = _spawn("outbox", container.db.url, name, "none")
    _wait_line(done, lambda line: line == "committed")
    _finish(done)
    with container.db.read() as conn:
        orgs = conn.execute(
            text("SELECT count(*) FROM organizations WHERE name = :n"), {"n": name}
        ).scalar_one()
        events = conn.execute(
            text(
                "SELECT count(*) FROM events WHERE type = 'organization.created' "
                "AND data LIKE :n"
            ),
            {"n": f"%{name}%"},
        ).scalar_one()
    assert (orgs, events) == (1, 1)


def test_studio_worker_runs_the_consumers_until_sigterm(container, world, tmp_path):
    container.dispatcher.stop()
    with container.db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM project_activity")).scalar_one() == 0
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "STUDIO_DATABASE_URL": container.db.url,
        "STUDIO_DATA_DIR": str(tmp_path),
        "STUDIO_EVENT_POLL_INTERVAL_SECONDS": "0.1",
    }
    env.pop("STUDIO_NATS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "studio.cli.main", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        def projected() -> int:  # by the worker process: only the database shows it
            with container.db.read() as conn:
                return conn.execute(text("SELECT count(*) FROM project_activity")).scalar_one()

        wait_until(lambda: projected() == 3, 20, "the worker to project the three projects")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with container.db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM project_activity")).scalar_one() == 3


def test_max_attempts_comes_from_the_environment(monkeypatch, tmp_path):
    from studio.bootstrap import bootstrap
    from studio.settings import Settings

    monkeypatch.setenv("STUDIO_EVENT_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path))
    c = bootstrap(Settings())
    try:
        assert c.dispatcher.retry.max_attempts == 2
    finally:
        c.close()
