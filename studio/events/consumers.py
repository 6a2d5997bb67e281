"""The consumer interface: what a projection or a worker implements to receive events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from studio.db.engine import UnitOfWork
    from studio.events.envelope import StoredEvent


@runtime_checkable
class Consumer(Protocol):
    """A named subscriber to event types.

    Guarantees the dispatcher gives a consumer:
    - events of the types it subscribes to (exact names, 'evidence.*' prefixes or '*'),
      in store position order within each stream, at least once;
    - `handle` runs inside a write transaction (`uow`) that also stores the consumer's
      checkpoint, so a consumer whose effects are all in the database has each event's
      effect exactly once, even when the event is delivered again;
    - a consumer with `side_effects = True` (webhooks, e-mail) is never called during a
      replay, and should use the event id as its idempotency key.

    A consumer that raises has its event retried with backoff and, after the configured
    number of attempts, parked (dead letter) without blocking other streams.

    Optionally, a consumer with slow pure work (model inference, text extraction) also
    defines `prepare(event) -> result` and `handle_prepared(uow, event, result)`: the
    dispatcher calls `prepare` before it opens the write transaction and hands the result
    to `handle_prepared` inside it, so the database's write lock is not held meanwhile.
    Such a consumer may set `prepare_limit` (an int class attribute): a pass then prepares
    at most that many of its events and ends before the next one, which bounds the memory
    the prepared results hold (extracted texts, for instance).
    """

    name: ClassVar[str]
    subscriptions: ClassVar[tuple[str, ...]]
    side_effects: ClassVar[bool]

    def handle(self, uow: UnitOfWork, event: StoredEvent) -> None:
        """Apply one event; may write through `uow.conn` and record follow-up events."""

    def reset(self, conn: Connection) -> None:
        """Clear this consumer's projection before a replay from position 0."""


class PreparingConsumer(Consumer, Protocol):
    """A consumer with the optional two steps described on Consumer: `prepare` outside the
    write transaction, `handle_prepared` with its result inside it."""

    def prepare(self, event: StoredEvent) -> Any:
        """The slow pure work for one event; its result goes to `handle_prepared`."""

    def handle_prepared(self, uow: UnitOfWork, event: StoredEvent, prepared: Any) -> None:
        """Apply one event with what `prepare` computed for it."""


def matches(subscriptions: tuple[str, ...], event_type: str) -> bool:
    """Whether an event type is covered by exact names, 'prefix.*' patterns or '*'."""
    for pattern in subscriptions:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False
