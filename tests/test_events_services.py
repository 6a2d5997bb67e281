"""Failure of the services underneath: NATS stopped and restarted, PostgreSQL down under load.
Each test runs its own server on a free port; the shared ones are never stopped."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest
from sqlalchemy import func, select, text
from starlette.testclient import TestClient

from studio.app import create_app
from studio.bootstrap import bootstrap
from studio.db.engine import make_engine
from studio.db.migrate import upgrade
from studio.domains.evidence.models import evidence
from studio.events.activity import project_activity
from studio.events.dispatcher import Dispatcher
from studio.events.models import event_publish_positions
from studio.events.transport_nats import NatsWorker, connect
from tests.conftest import IN_CI, make_settings, seed_world, service_url
from tests.events_support import EFFECTS_DDL, EffectCounter, emit
from tests.services_support import OwnNats, OwnPostgres
from tests.timing_support import wait_until


def _effects(db) -> int:
    with db.read() as conn:
        return conn.execute(text("SELECT count(*) FROM test_effects")).scalar_one()


class IdleSignallingDispatcher(Dispatcher):
    """Sets `idle` after a pass that found nothing to do: its loop then waits to be woken."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.idle = threading.Event()

    def run_once(self, names=None) -> int:
        handled = super().run_once(names)
        if handled == 0:
            self.idle.set()
        return handled


def _stream_messages(url: str, stream: str) -> int:
    async def count() -> int:
        nc = await connect(url)
        try:
            return (await nc.jetstream().stream_info(stream)).state.messages
        finally:
            await nc.close()

    return asyncio.run(count())


@pytest.mark.nats
@pytest.mark.slow
def test_nats_down_writes_succeed_and_delivery_catches_up(tmp_path, database_url):
    service_url("nats")  # gated like every NATS test, though it runs a server of its own
    nats = OwnNats(tmp_path / "jetstream")
    nats.start()
    suffix = uuid.uuid4().hex[:8]
    settings = make_settings(
        tmp_path,
        database_url,
        run_workers=False,
        nats_url=nats.url,
        nats_stream=f"TEST_{suffix}",
        nats_subject_prefix=f"test{suffix}",
    )
    api = bootstrap(settings)
    # The worker's dispatcher polls only every 60 s: prompt delivery below comes from NATS.
    worker_dispatcher = IdleSignallingDispatcher(api.db, [EffectCounter()], poll_interval=60)
    worker = NatsWorker(
        worker_dispatcher, nats.url, settings.nats_stream, settings.nats_subject_prefix
    )
    try:
        with api.db.write() as uow:
            uow.conn.execute(text(EFFECTS_DDL))
        worker_dispatcher.ensure_checkpoints()
        api.relay.start()
        worker.start()
        worker_dispatcher.start()
        assert api.relay.connected.wait(10) and worker.connected.wait(10)
        # After its first pass the worker's loop waits 60 s unless NATS wakes it.
        assert worker_dispatcher.idle.wait(10)
        for _ in range(10):
            emit(api.db, "work.item", "s", 2)
        wait_until(lambda: _effects(api.db) == 20, 10, "events handled through NATS")

        def relayed() -> int:
            with api.db.read() as conn:
                return conn.execute(select(event_publish_positions.c.position)).scalar() or 0

        nats.stop()
        for _ in range(10):
            emit(api.db, "work.item", "s", 2)  # writes commit with NATS down
        # The commits woke the relay; its publish fails and it drops the connection.
        wait_until(lambda: not api.relay.connected.is_set(), 15, "the relay to see NATS gone")
        with api.db.read() as conn:
            head = api.store.head_position(conn)
        assert relayed() < head, "nothing was published while NATS was down"
        assert _effects(api.db) == 20, "nothing can wake the worker while NATS is down"

        nats.start()
        wait_until(lambda: _effects(api.db) == 40, 20, "delivery caught up after NATS returned")
        wait_until(lambda: relayed() == head, 10, "relay at head")
        # every event published exactly once: retried publishes were deduplicated by id
        assert _stream_messages(nats.url, settings.nats_stream) == head
        assert worker.received >= 1
    finally:
        worker.stop()
        worker_dispatcher.stop()
        api.close()
        nats.stop()


def _create_evidence(client, world, i) -> int:
    r = client.post(
        f"/api/v1/projects/{world.project_a}/evidence",
        headers=world["customer"].headers,
        json={"title": f"Load {i}", "controlId": "AC-2"},
    )
    return r.status_code, (
        r.json()["data"]["id"] if r.status_code == 201 else r.json()["error"]["code"]
    )


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_down_under_load_answers_503_and_loses_nothing(tmp_path):
    service_url("postgres")  # gated like every PostgreSQL test; it runs a cluster of its own
    try:
        pg = OwnPostgres()
    except (RuntimeError, OSError) as exc:
        if IN_CI:
            pytest.fail(f"a private PostgreSQL is required in CI: {exc}")
        pytest.skip(f"cannot run a private PostgreSQL here: {exc}")
    try:
        pg.start()
        engine = make_engine(pg.url)
        upgrade(engine)
        engine.dispose()
        c = bootstrap(make_settings(tmp_path, pg.url, event_poll_interval_seconds=0.2,
                                    run_workers=True))  # consumers in the background, as served
        world = seed_world(c)
        acknowledged: list[str] = []
        outcomes: list[tuple[int, str]] = []
        answered = threading.Condition()  # notified after each answer the loader records
        stop = threading.Event()
        with TestClient(create_app(c), raise_server_exceptions=False) as client:

            def load() -> None:
                i = 0
                while not stop.is_set():
                    status, value = _create_evidence(client, world, i)
                    with answered:
                        outcomes.append((status, value))
                        if status == 201:
                            acknowledged.append(value)
                        answered.notify_all()
                    i += 1
                    time.sleep(0.01)  # paces the load; it waits for nothing

            def until_answered(predicate, timeout: float, what: str) -> None:
                with answered:
                    assert answered.wait_for(predicate, timeout), f"timed out: {what}"

            loader = threading.Thread(target=load)
            loader.start()
            until_answered(lambda: len(acknowledged) >= 10, 15, "writes before the outage")
            pg.stop("immediate")
            with answered:
                down_from = len(outcomes)
            # The first answer may belong to a request sent before the stop; five more are
            # answered with the server down.
            until_answered(lambda: len(outcomes) >= down_from + 6, 15, "answers during the outage")
            with answered:
                during = outcomes[down_from + 1 :]
            ready = client.get("/readyz")
            pg.start()
            with answered:
                before_restart = len(acknowledged)
            until_answered(lambda: len(acknowledged) >= before_restart + 10, 20,
                           "writes after the outage")
            stop.set()
            loader.join()
            assert during and all(s == 503 and v == "service_unavailable" for s, v in during)
            assert ready.status_code == 503
            assert not [o for o in outcomes if o[0] not in (201, 503)]
            with c.db.read() as conn:
                stored = {str(r) for r in conn.execute(select(evidence.c.id)).scalars()}
            assert set(acknowledged) <= stored
            # the in-process consumers resume and catch up on everything committed
            c.dispatcher.wake()
            wait_until(lambda: c.dispatcher.status()[0]["lag"] == 0, 15, "consumer lag at zero")
            with c.db.read() as conn:
                total = conn.execute(
                    select(project_activity.c.evidence_total).where(
                        project_activity.c.project_id == str(world.project_a)
                    )
                ).scalar_one()
                assert (
                    total == conn.execute(select(func.count()).select_from(evidence)).scalar_one()
                )
        c.close()
    finally:
        pg.remove()
