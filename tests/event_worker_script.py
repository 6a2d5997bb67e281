"""Subprocess entry points for the crash tests (run with `python -m tests.event_worker_script`)."""

from __future__ import annotations

import sys
import time

from studio.db.engine import Database
from studio.domains.users.service import create_organization
from studio.events.dispatcher import Dispatcher
from studio.events.store import EventStore
from tests.events_support import EffectCounter


def worker(url: str) -> None:
    """Handle every work.* event with a slow handler, printing each position as it goes."""
    db = Database(url, EventStore())

    class Loud(EffectCounter):
        def handle(self, uow, event):
            super().handle(uow, event)
            print(f"handling {event.position}", flush=True)

    Dispatcher(db, [Loud(delay=0.005)], batch_size=50).drain(timeout=60)
    print("drained", flush=True)


def outbox(url: str, name: str, stage: str) -> None:
    """Change state and record its event, then hang at `stage` until killed."""
    store = EventStore()
    if stage == "after_append":
        original = store.append

        def append_then_hang(conn, batch):
            stored = original(conn, batch)
            print("appended", flush=True)
            time.sleep(60)  # the crash point under test: the test kills us while we sleep
            return stored

        store.append = append_then_hang  # type: ignore[method-assign]
    db = Database(url, store)
    with db.write(actor="crash-test") as uow:
        create_organization(uow, name)
        if stage == "after_change":
            print("changed", flush=True)
            time.sleep(60)  # the crash point under test: the test kills us while we sleep
    print("committed", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        worker(sys.argv[2])
    else:
        outbox(sys.argv[2], sys.argv[3], sys.argv[4])
