"""`event_handled` is logged (and counted) once the consumer's pass has committed: a log line
never claims an effect that a rollback undid."""

from __future__ import annotations

from typing import ClassVar

import pytest
from structlog.testing import capture_logs

from studio.errors import VersionConflict
from studio.events.dispatcher import Dispatcher
from studio.events.metrics import EVENTS_HANDLED
from tests.events_support import emit


class Recorder:
    """Handles work.item events; with `conflict`, its follow-up event cannot be appended, so the
    handler succeeds but the pass's transaction rolls back at commit."""

    name: ClassVar[str] = "recorder"
    subscriptions: ClassVar[tuple[str, ...]] = ("work.item",)
    side_effects: ClassVar[bool] = False

    def __init__(self, conflict: bool):
        self.conflict = conflict
        self.calls = 0

    def handle(self, uow, event) -> None:
        self.calls += 1
        uow.emit("work.noted", event.stream, {"of": str(event.id)},
                 expected_version=999 if self.conflict else None)

    def reset(self, conn) -> None:
        pass


def handled_lines(logs: list[dict]) -> list[dict]:
    return [line for line in logs if line["event"] == "event_handled" and line["consumer"] == "recorder"]


def counted() -> float:
    return EVENTS_HANDLED.labels("recorder", "work.item")._value.get()


def test_a_handler_whose_transaction_rolls_back_logs_no_event_handled(container):
    recorder = Recorder(conflict=True)
    d = Dispatcher(container.db, [recorder])
    emit(container.db, "work.item", "s1")
    before = counted()
    with capture_logs() as logs, pytest.raises(VersionConflict):
        d.run_once()
    assert recorder.calls == 1  # the handler ran and returned ...
    assert handled_lines(logs) == []  # ... but its pass did not commit: nothing claims it
    assert counted() == before
    with container.db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM event_acks").scalar_one() == 0


def test_a_committed_pass_logs_each_handled_event_once(container):
    d = Dispatcher(container.db, [Recorder(conflict=False)])
    emit(container.db, "work.item", "s1", 2)
    before = counted()
    with capture_logs() as logs:
        d.drain()
    lines = handled_lines(logs)
    assert [line["type"] for line in lines] == ["work.item", "work.item"]
    assert counted() == before + 2
