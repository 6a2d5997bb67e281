"""Delivery through the dispatcher: checkpoints, acks, retries, parking, replay."""

from __future__ import annotations

from sqlalchemy import select, text

from studio.events.activity import ProjectActivityProjection, project_activity
from studio.events.dispatcher import Dispatcher, ReplayRefused, RetryPolicy, dead_letters
from studio.events.models import event_acks
from tests.events_support import EFFECTS_DDL, EffectCounter, Poison, emit


def _activity(db) -> list[tuple]:
    with db.read() as conn:
        return [
            tuple(r)
            for r in conn.execute(select(project_activity).order_by(project_activity.c.project_id))
        ]


def test_projection_follows_the_store_and_acks_each_event(container, world, client):
    d = container.dispatcher
    d.drain()
    rows = {r.project_id: r for r in _rows(container.db)}
    a = rows[str(world.project_a)]
    assert a.members == 4  # the four members added in the seeded world
    created = client.post(
        f"/api/v1/projects/{world.project_a}/evidence",
        headers=world["customer"].headers,
        json={"title": "Policy", "controlId": "AC-1"},
    )
    assert created.status_code == 201
    d.drain()
    a2 = {r.project_id: r for r in _rows(container.db)}[str(world.project_a)]
    assert a2.evidence_total == 1 and a2.events == a.events + 1
    with container.db.read() as conn:
        acked = (
            conn.execute(
                select(event_acks.c.position).where(event_acks.c.consumer == "project_activity")
            )
            .scalars()
            .all()
        )
    assert a2.last_position in acked
    assert all(s["lag"] == 0 for s in d.status())


def _rows(db):
    with db.read() as conn:
        return conn.execute(select(project_activity)).all()


def test_replay_rebuilds_the_same_projection(container, world, client):
    for i in range(3):
        r = client.post(
            f"/api/v1/projects/{world.project_a}/evidence",
            headers=world["customer"].headers,
            json={"title": f"E{i}", "controlId": "AC-1"},
        )
        assert r.status_code == 201
    container.dispatcher.drain()
    live = _activity(container.db)
    assert live
    with container.db.write() as uow:  # damage the projection: replay must repair it
        uow.conn.execute(
            project_activity.delete().where(project_activity.c.project_id == str(world.project_b))
        )
        uow.conn.execute(project_activity.update().values(events=999))
    seen = []
    container.dispatcher.replay(
        "project_activity", progress=lambda done, total: seen.append((done, total))
    )
    assert _activity(container.db) == live
    assert seen and seen[-1][0] == seen[-1][1]
    # a partial replay from a time re-applies only the tail; from 0 is the only full rebuild
    container.dispatcher.replay("project_activity", from_position=1)
    assert _activity(container.db) == live


def test_side_effect_consumers_are_never_replayed(container):
    class Mailer:
        name = "mailer"
        subscriptions = ("*",)
        side_effects = True

        def handle(self, uow, event):
            raise AssertionError("must not run")

        def reset(self, conn):
            raise AssertionError("must not run")

    d = Dispatcher(container.db, [Mailer()])
    emit(container.db, "work.done", "s1")
    try:
        d.replay("mailer")
    except ReplayRefused:
        pass
    else:
        raise AssertionError("replay of a side-effect consumer was accepted")
    # a new side-effect consumer starts at the head: history is not re-sent
    assert d.run_once() == 0


def test_poison_event_is_parked_after_exact_attempts_without_blocking_other_streams(container):
    db = container.db
    poison = Poison("bad")
    # No backoff: every retry is due at once, so passes alone decide when it is parked.
    d = Dispatcher(db, [poison], retry=RetryPolicy(max_attempts=3, base_seconds=0))
    emit(db, "work.item", "bad", 2)
    emit(db, "work.item", "good", 3)
    d.drain()  # until no retry is due: the first bad event is parked
    with db.read() as conn:
        letters = dead_letters(conn)
    assert [(r["status"], r["attempts"]) for r in letters] == [("parked", 3), ("blocked", 0)]
    first_bad = letters[0]["position"]
    assert poison.attempts[first_bad] == 3
    assert [s for s, _ in poison.handled] == ["good"] * 3  # other streams flowed
    assert d.status()[0]["lag"] == 0
    d.run_once()  # a retrying event would be due now
    assert poison.attempts[first_bad] == 3  # parked: no further attempts
    poison.healed = True
    assert d.retry_parked(event_id=letters[0]["event_id"]) == 1
    d.drain()
    with db.read() as conn:
        assert dead_letters(conn) == []
    assert [p for s, p in poison.handled if s == "bad"] == [first_bad, letters[1]["position"]]


def test_retry_succeeds_before_parking(container):
    db = container.db
    poison = Poison("flaky")
    d = Dispatcher(db, [poison], retry=RetryPolicy(max_attempts=5, base_seconds=0))
    emit(db, "work.item", "flaky", 2)
    d.run_once()
    with db.read() as conn:
        assert [r["status"] for r in dead_letters(conn)] == ["retrying", "blocked"]
    poison.healed = True
    d.drain()  # the retry is due at once
    with db.read() as conn:
        assert dead_letters(conn) == []
    assert len(poison.handled) == 2
    assert list(poison.attempts.values()) == [2, 1]  # failed once, then succeeded on retry


def test_two_dispatchers_share_a_consumer_without_double_effect(container):
    db = container.db
    with db.write() as uow:
        uow.conn.execute(text(EFFECTS_DDL))
    emit(db, "work.item", "s", 300)
    import threading

    dispatchers = [Dispatcher(db, [EffectCounter()], batch_size=20) for _ in range(3)]
    for d in dispatchers:
        d.ensure_checkpoints()
    threads = [threading.Thread(target=d.drain) for d in dispatchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dispatchers[0].drain()
    with db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM test_effects")).scalar_one() == 300
        assert dead_letters(conn) == []
    assert ProjectActivityProjection.name == "project_activity"


def test_prepare_limit_bounds_the_prepared_results_a_pass_holds(container):
    """A consumer with `prepare_limit` gets every event prepared outside the transaction,
    in order, without more than that many prepared results waiting at once."""

    class Extractor:
        name = "extractor"
        subscriptions = ("work.item",)
        side_effects = False
        prepare_limit = 2

        def __init__(self):
            self.waiting = 0
            self.most_waiting = 0
            self.handled: list[tuple[int, object]] = []

        def prepare(self, event):
            self.waiting += 1
            self.most_waiting = max(self.most_waiting, self.waiting)
            return f"prepared {event.position}"

        def handle_prepared(self, uow, event, result):
            self.waiting -= 1
            self.handled.append((event.position, result))

        def handle(self, uow, event):
            self.handled.append((event.position, None))

        def reset(self, conn):
            pass

    db = container.db
    emit(db, "work.item", "s1", 3)
    emit(db, "work.other", "s2", 2)
    emit(db, "work.item", "s1", 2)
    extractor = Extractor()
    Dispatcher(db, [extractor]).drain()
    with db.read() as conn:
        items = [
            r.position
            for r in conn.execute(text("SELECT position, type FROM events ORDER BY position"))
            if r.type == "work.item"
        ]
    assert extractor.handled == [(p, f"prepared {p}") for p in items]
    assert extractor.most_waiting == 2
