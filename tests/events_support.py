"""Consumers and helpers shared by the event tests and the worker subprocess they start."""

from __future__ import annotations

import time
from typing import ClassVar

from sqlalchemy import text

from studio.db.engine import Database


def emit(db: Database, type_: str, stream: str, n: int = 1, **data: object) -> None:
    with db.write(actor="test") as uow:
        for i in range(n):
            uow.emit(type_, stream, {"i": i, **data})


EFFECTS_DDL = "CREATE TABLE IF NOT EXISTS test_effects (event_id VARCHAR(36) PRIMARY KEY, position BIGINT NOT NULL)"


class EffectCounter:
    """Writes one row per event under a unique key: a double effect would violate it."""

    name: ClassVar[str] = "effect_counter"
    subscriptions: ClassVar[tuple[str, ...]] = ("work.*",)
    side_effects: ClassVar[bool] = False

    def __init__(self, delay: float = 0.0):
        self.delay = delay

    def handle(self, uow, event) -> None:
        if self.delay:
            time.sleep(self.delay)  # a deliberately slow handler: the behaviour under test
        uow.conn.execute(
            text("INSERT INTO test_effects (event_id, position) VALUES (:e, :p)"),
            {"e": str(event.id), "p": event.position},
        )

    def reset(self, conn) -> None:
        conn.execute(text("DELETE FROM test_effects"))


class Poison:
    """Fails every event of one stream until healed; counts attempts per position."""

    name: ClassVar[str] = "poison"
    subscriptions: ClassVar[tuple[str, ...]] = ("*",)
    side_effects: ClassVar[bool] = False

    def __init__(self, bad_stream: str):
        self.bad_stream = bad_stream
        self.healed = False
        self.attempts: dict[int, int] = {}
        self.handled: list[tuple[str, int]] = []

    def handle(self, uow, event) -> None:
        self.attempts[event.position] = self.attempts.get(event.position, 0) + 1
        if event.stream == self.bad_stream and not self.healed:
            raise RuntimeError("poison")
        self.handled.append((event.stream, event.position))

    def reset(self, conn) -> None:
        self.handled.clear()
