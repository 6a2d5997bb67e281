"""Time in tests: a clock a test moves by hand, and a deadline-bounded poll for the few
states that come from another process or a server we do not control (nothing to wait on).

Prefer, in this order: drain the dispatcher, join the thread, wait on a threading.Event or
Condition, inject a FakeClock; use wait_until only when none of those exists."""

from __future__ import annotations

import time
from collections.abc import Callable


class FakeClock:
    """Stands in for time.time / time.monotonic; moves only when the test says so."""

    def __init__(self, start: float | None = None):
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(
    predicate: Callable[[], object], timeout: float, what: str, *, interval: float = 0.05
) -> None:
    """Return as soon as `predicate()` is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
