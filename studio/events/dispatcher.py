"""The dispatcher: delivers stored events to consumers with checkpoints, retries and parking.

Each pass for one consumer is ONE write transaction that
1. locks the consumer's checkpoint row (PostgreSQL: FOR UPDATE SKIP LOCKED, so several
   processes share the consumers without two of them handling the same one at once;
   SQLite: BEGIN IMMEDIATE already admits one writer),
2. retries its due failed events, then handles the events after the checkpoint, each
   handler inside a SAVEPOINT so a failing handler rolls back only its own effects,
3. records an ack per handled event and moves the checkpoint,
and commits. The handler's effects, its ack and the checkpoint commit together: a
crash before commit redelivers the batch, a crash after it cannot deliver it again.

Ordering per stream: once an event of stream S fails for a consumer, later events of S
for that consumer are stored as 'blocked' behind it and handled, in order, only after it
succeeds (or is retried from the dead letters). Other streams keep flowing.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import structlog
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from studio.db.engine import Database, UnitOfWork, utcnow
from studio.errors import DatabaseUnavailable
from studio.events.consumers import Consumer, PreparingConsumer, matches
from studio.events.envelope import StoredEvent
from studio.events.metrics import (
    CONSUMER_LAG,
    EVENTS_HANDLED,
    HANDLER_FAILURES,
    HANDLER_LATENCY,
    PARKED,
)
from studio.events.models import consumer_checkpoints as cp_t
from studio.events.models import event_acks as acks_t
from studio.events.models import event_dead_letters as dl_t
from studio.events.models import events as events_t
from studio.events.store import row_to_event

log = structlog.get_logger("studio.events")

RETRYING, PARKED_STATUS, BLOCKED = "retrying", "parked", "blocked"


class UnknownConsumer(LookupError):
    """No consumer of that name is registered."""


class ReplayRefused(RuntimeError):
    """Replaying a consumer with external side effects would re-trigger them."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 1.0
    max_seconds: float = 300.0

    def delay(self, attempts: int) -> float:
        """Exponential backoff: base, 2·base, 4·base … capped."""
        factor: int = 2 ** max(attempts - 1, 0)  # a non-negative exponent: an int
        return min(self.base_seconds * factor, self.max_seconds)


class Dispatcher:
    """Runs the registered consumers over the store, in-process or for `studio worker`."""

    def __init__(
        self,
        db: Database,
        consumers: Sequence[Consumer],
        *,
        retry: RetryPolicy | None = None,
        batch_size: int = 100,
        poll_interval: float = 1.0,
    ):
        names = [c.name for c in consumers]
        if len(set(names)) != len(names):
            raise ValueError(f"consumer names must be unique: {names}")
        self.db = db
        self.consumers: dict[str, Consumer] = {c.name: c for c in consumers}
        self.retry = retry or RetryPolicy()
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = False

    # -- lifecycle -------------------------------------------------------------------
    def wake(self, _uow: Any = None) -> None:
        """Ask the loop to look at the store now (registered as Database.after_commit)."""
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="studio-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            try:
                busy = self.run_once() > 0
                failures = 0
            except DatabaseUnavailable as exc:
                failures += 1
                log.warning("dispatcher_database_unavailable", error=str(exc), attempt=failures)
                busy = False
            except Exception:
                failures += 1
                log.exception("dispatcher_pass_failed")
                busy = False
            if busy:
                continue
            # Poll even without a wake-up: events committed by other processes, due retries.
            self._wake.wait(min(self.poll_interval * (2 ** min(failures, 5)), 30.0))

    # -- checkpoints -----------------------------------------------------------------
    def ensure_checkpoints(self) -> None:
        """Create missing checkpoint rows: projections start at 0, side effects at the head."""
        with self.db.write() as uow:
            head = _head(uow.conn)
            existing = set(uow.conn.execute(select(cp_t.c.consumer)).scalars())
            for name, consumer in self.consumers.items():
                if name in existing:
                    continue
                start = head if consumer.side_effects else 0
                stmt = upsert_insert(uow.conn).values(
                    consumer=name, position=start, updated_at=utcnow()
                )
                uow.conn.execute(stmt.on_conflict_do_nothing(index_elements=["consumer"]))
        self._ready = True

    # -- one pass ----------------------------------------------------------------------
    def run_once(self, names: Iterable[str] | None = None) -> int:
        """One batch for each consumer; returns how many events were handled or skipped."""
        if not self._ready:
            self.ensure_checkpoints()
        total = 0
        for name in names or list(self.consumers):
            total += self._run_consumer(self.consumers[name])
        return total

    def drain(self, timeout: float = 30.0) -> None:
        """Run passes until every consumer is at the head and no retry is due (tests, CLI).

        A pass that handled nothing may mean another thread or process holds a consumer,
        so the read-only check decides when the work is really done."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.run_once() > 0:
                continue
            if not any(self._has_work(name) for name in self.consumers):
                return
            time.sleep(0.01)
        raise TimeoutError("consumers did not catch up in time")

    def _has_work(self, name: str) -> bool:
        """A read-only look first, so an idle consumer never takes the write lock."""
        with self.db.read() as conn:
            checkpoint = conn.execute(select(cp_t.c.position).where(cp_t.c.consumer == name)).scalar()
            if checkpoint is None or _head(conn) > checkpoint:
                return True
            due = conn.execute(select(dl_t.c.position).where(
                dl_t.c.consumer == name, dl_t.c.status == RETRYING, dl_t.c.next_attempt_at <= utcnow()
            ).limit(1)).first()
            return due is not None

    def _prepare(self, consumer: Consumer) -> tuple[dict[Any, Any], int | None]:
        """Run a consumer's optional `prepare(event)` for its next batch before its write
        transaction opens, so slow pure work (model inference) never holds the write lock.
        Results are keyed by event id; a batch that moved on meanwhile just goes unused.
        With the consumer's `prepare_limit` reached, also returns the position of the first
        event left unprepared: the pass stops before it (the next pass prepares it)."""
        prepare = getattr(consumer, "prepare", None)
        if prepare is None or not hasattr(consumer, "handle_prepared"):
            return {}, None
        limit: int | None = getattr(consumer, "prepare_limit", None)
        with self.db.read() as conn:
            checkpoint = conn.execute(
                select(cp_t.c.position).where(cp_t.c.consumer == consumer.name)).scalar() or 0
            batch = [
                row_to_event(r._mapping)
                for r in conn.execute(
                    select(events_t).where(events_t.c.position > checkpoint)
                    .order_by(events_t.c.position).limit(self.batch_size))
            ]
        prepared: dict[Any, Any] = {}
        tried = 0
        for event in batch:
            if matches(consumer.subscriptions, event.type):
                if limit is not None and tried >= limit:
                    return prepared, event.position
                tried += 1
                try:
                    prepared[event.id] = prepare(event)
                except Exception as exc:  # handle() runs the work again and owns the failure
                    log.warning("event_prepare_failed", consumer=consumer.name,
                                event_id=str(event.id), error=repr(exc))
        return prepared, None

    def _run_consumer(self, consumer: Consumer, *, replay: bool = False) -> int:
        if not self._has_work(consumer.name):
            return 0
        prepared, stop_before = self._prepare(consumer)
        with self.db.write(actor=f"consumer:{consumer.name}") as uow:
            conn = uow.conn
            locked = conn.execute(
                select(cp_t.c.position)
                .where(cp_t.c.consumer == consumer.name)
                .with_for_update(skip_locked=True)
            ).first()
            if locked is None:
                return 0  # another process holds this consumer right now
            checkpoint = locked.position
            done = self._retry_due(uow, consumer)
            query = select(events_t).where(events_t.c.position > checkpoint)
            if stop_before is not None:
                query = query.where(events_t.c.position < stop_before)
            batch = [
                row_to_event(r._mapping)
                for r in conn.execute(
                    query.order_by(events_t.c.position).limit(self.batch_size)
                )
            ]
            if batch:
                waiting = set(
                    conn.execute(
                        select(dl_t.c.stream).where(dl_t.c.consumer == consumer.name).distinct()
                    ).scalars()
                )
                for event in batch:
                    if not matches(consumer.subscriptions, event.type):
                        continue
                    if event.stream in waiting:
                        self._add_dead_letter(uow, consumer, event, BLOCKED, 0, None)
                        continue
                    error = self._attempt(uow, consumer, event, replay=replay,
                                          prepared=prepared)
                    if error is None:
                        continue
                    status = PARKED_STATUS if self.retry.max_attempts <= 1 else RETRYING
                    self._add_dead_letter(uow, consumer, event, status, 1, error)
                    waiting.add(event.stream)
                conn.execute(
                    update(cp_t)
                    .where(cp_t.c.consumer == consumer.name)
                    .values(position=batch[-1].position, updated_at=utcnow())
                )
            return done + len(batch)

    def _retry_due(self, uow: UnitOfWork, consumer: Consumer) -> int:
        conn = uow.conn
        due = conn.execute(
            select(dl_t)
            .where(
                dl_t.c.consumer == consumer.name,
                dl_t.c.status == RETRYING,
                dl_t.c.next_attempt_at <= utcnow(),
            )
            .order_by(dl_t.c.position)
            .limit(self.batch_size)
        ).all()
        handled = 0
        for row in due:
            event = _event_at(conn, row.position)
            error = self._attempt(uow, consumer, event)
            if error is not None:
                self._record_failure(uow, consumer, row.position, row.attempts + 1, error)
                continue
            handled += 1
            conn.execute(
                delete(dl_t).where(
                    dl_t.c.consumer == consumer.name, dl_t.c.position == row.position
                )
            )
            handled += self._release_followers(uow, consumer, row.stream)
        return handled

    def _release_followers(self, uow: UnitOfWork, consumer: Consumer, stream: str) -> int:
        """Handle the events blocked behind a stream's head, in order, until one fails."""
        conn = uow.conn
        followers = (
            conn.execute(
                select(dl_t.c.position)
                .where(
                    dl_t.c.consumer == consumer.name,
                    dl_t.c.stream == stream,
                    dl_t.c.status == BLOCKED,
                )
                .order_by(dl_t.c.position)
            )
            .scalars()
            .all()
        )
        handled = 0
        for position in followers:
            error = self._attempt(uow, consumer, _event_at(conn, position))
            if error is not None:
                self._record_failure(uow, consumer, position, 1, error)
                break
            conn.execute(
                delete(dl_t).where(dl_t.c.consumer == consumer.name, dl_t.c.position == position)
            )
            handled += 1
        return handled

    def _attempt(
        self,
        uow: UnitOfWork,
        consumer: Consumer,
        event: StoredEvent,
        *,
        replay: bool = False,
        prepared: dict[Any, Any] | None = None,
    ) -> str | None:
        """Run the handler in a savepoint; on success record the ack. Returns the error.

        Follow-up events the handler emits get ids derived from this event and consumer
        (`UnitOfWork.caused_by`), so handling it again emits nothing new. The handled
        event is counted and logged once the pass commits, never for a rolled-back pass."""
        recorded, registered = len(uow.events), len(uow.committed)
        started = time.perf_counter()
        try:
            with uow.caused_by(event, consumer.name), uow.conn.begin_nested():
                if prepared and event.id in prepared:
                    # Results exist only for consumers with both steps (`_prepare`).
                    preparing = cast(PreparingConsumer, consumer)
                    preparing.handle_prepared(uow, event, prepared[event.id])
                else:
                    consumer.handle(uow, event)
        except Exception as exc:
            del uow.events[recorded:]
            del uow.committed[registered:]
            HANDLER_FAILURES.labels(consumer.name, event.type).inc()
            log.warning(
                "event_handler_failed",
                consumer=consumer.name,
                event_id=str(event.id),
                type=event.type,
                position=event.position,
                error=repr(exc),
            )
            return f"{type(exc).__name__}: {exc}"[:2000]
        elapsed = time.perf_counter() - started
        uow.conn.execute(
            insert(acks_t).values(
                consumer=consumer.name,
                position=event.position,
                event_id=event.id,
                handled_at=utcnow(),
            )
        )
        uow.after_commit(lambda: _handled(consumer.name, event, elapsed, replay))
        return None

    def _add_dead_letter(
        self,
        uow: UnitOfWork,
        consumer: Consumer,
        event: StoredEvent,
        status: str,
        attempts: int,
        error: str | None,
    ) -> None:
        now = utcnow()
        next_at = (
            now + dt.timedelta(seconds=self.retry.delay(attempts)) if status == RETRYING else None
        )
        uow.conn.execute(
            insert(dl_t).values(
                consumer=consumer.name,
                position=event.position,
                event_id=event.id,
                event_type=event.type,
                stream=event.stream,
                status=status,
                attempts=attempts,
                last_error=error,
                next_attempt_at=next_at,
                created_at=now,
                updated_at=now,
            )
        )
        if status == PARKED_STATUS:
            uow.after_commit(lambda: log.error(
                "event_parked",
                consumer=consumer.name,
                event_id=str(event.id),
                type=event.type,
                position=event.position,
                attempts=attempts,
                error=error,
            ))

    def _record_failure(
        self, uow: UnitOfWork, consumer: Consumer, position: int, attempts: int, error: str
    ) -> None:
        now = utcnow()
        parked = attempts >= self.retry.max_attempts
        uow.conn.execute(
            update(dl_t)
            .where(dl_t.c.consumer == consumer.name, dl_t.c.position == position)
            .values(
                status=PARKED_STATUS if parked else RETRYING,
                attempts=attempts,
                last_error=error,
                next_attempt_at=None
                if parked
                else now + dt.timedelta(seconds=self.retry.delay(attempts)),
                updated_at=now,
            )
        )
        if parked:
            uow.after_commit(lambda: log.error(
                "event_parked",
                consumer=consumer.name,
                position=position,
                attempts=attempts,
                error=error,
            ))

    # -- dead letters ----------------------------------------------------------------
    def retry_parked(
        self, *, event_id: uuid.UUID | None = None, consumer: str | None = None
    ) -> int:
        """Move parked events back to 'retrying', due now, with a fresh attempt budget."""
        with self.db.write(actor="cli") as uow:
            stmt = update(dl_t).where(dl_t.c.status == PARKED_STATUS)
            if event_id is not None:
                stmt = stmt.where(dl_t.c.event_id == event_id)
            if consumer is not None:
                stmt = stmt.where(dl_t.c.consumer == consumer)
            result = uow.conn.execute(
                stmt.values(
                    status=RETRYING, attempts=0, next_attempt_at=utcnow(), updated_at=utcnow()
                )
            )
        self.wake()
        return result.rowcount

    # -- replay ------------------------------------------------------------------------
    def replay(
        self,
        name: str,
        *,
        from_position: int | None = None,
        since: dt.datetime | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Rebuild a consumer's effects from a position (0 = reset the projection) or a time."""
        consumer = self.consumers.get(name)
        if consumer is None:
            raise UnknownConsumer(name)
        if consumer.side_effects:
            raise ReplayRefused(f"{name} has external side effects; it is never replayed")
        self.ensure_checkpoints()
        with self.db.write(actor="cli") as uow:
            conn = uow.conn
            conn.execute(
                select(cp_t.c.position).where(cp_t.c.consumer == name).with_for_update()
            ).first()
            if since is not None:
                first = conn.execute(
                    select(func.min(events_t.c.position)).where(events_t.c.timestamp >= since)
                ).scalar()
                start = (first or _head(conn) + 1) - 1
            else:
                # Positions start at 1; `from 0` and `from 1` both mean all of them.
                start = max((from_position or 0) - 1, 0)
            if start == 0:
                consumer.reset(conn)
            conn.execute(delete(acks_t).where(acks_t.c.consumer == name, acks_t.c.position > start))
            conn.execute(delete(dl_t).where(dl_t.c.consumer == name, dl_t.c.position > start))
            conn.execute(
                update(cp_t)
                .where(cp_t.c.consumer == name)
                .values(position=start, updated_at=utcnow())
            )
            head = _head(conn)
        total = head - start
        while True:
            # Progress is read from the checkpoint: a live dispatcher may take passes too.
            handled = self._run_consumer(consumer, replay=True)
            with self.db.read() as conn:
                position = conn.execute(
                    select(cp_t.c.position).where(cp_t.c.consumer == name)
                ).scalar_one()
            if progress:
                progress(min(position, head) - start, total)
            if position >= head:
                return total
            if handled == 0:
                time.sleep(0.01)

    # -- monitoring --------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        """Per consumer: checkpoint, lag behind the head, parked/blocked/retrying counts."""
        with self.db.read() as conn:
            head = _head(conn)
            positions = dict(conn.execute(select(cp_t.c.consumer, cp_t.c.position)).all())
            counts: dict[tuple[str, str], int] = {
                (r.consumer, r.status): r.n
                for r in conn.execute(
                    select(dl_t.c.consumer, dl_t.c.status, func.count().label("n")).group_by(
                        dl_t.c.consumer, dl_t.c.status
                    )
                )
            }
        out = []
        for name, consumer in self.consumers.items():
            position = positions.get(name, 0)
            out.append(
                {
                    "consumer": name,
                    "subscriptions": list(consumer.subscriptions),
                    "sideEffects": consumer.side_effects,
                    "checkpoint": position,
                    "head": head,
                    "lag": max(head - position, 0),
                    **{s: counts.get((name, s), 0) for s in (RETRYING, PARKED_STATUS, BLOCKED)},
                }
            )
        return out

    def update_gauges(self) -> None:
        for row in self.status():
            CONSUMER_LAG.labels(row["consumer"]).set(row["lag"])
            for s in (RETRYING, PARKED_STATUS, BLOCKED):
                PARKED.labels(row["consumer"], s).set(row[s])


def dead_letters(
    conn: Connection,
    *,
    statuses: Sequence[str] = (PARKED_STATUS, BLOCKED, RETRYING),
    limit: int = 500,
) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(dl_t)
        .where(dl_t.c.status.in_(statuses))
        .order_by(dl_t.c.consumer, dl_t.c.position)
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


def delivery_rows(conn: Connection, event_id: Any) -> tuple[list[Any], list[Any], dict[str, int]]:
    """One event's acknowledgments (oldest first), its dead letters, and every consumer's
    checkpoint."""
    acks = conn.execute(
        select(acks_t.c.consumer, acks_t.c.handled_at)
        .where(acks_t.c.event_id == event_id).order_by(acks_t.c.handled_at)
    ).all()
    letters = conn.execute(
        select(dl_t.c.consumer, dl_t.c.status, dl_t.c.attempts, dl_t.c.last_error)
        .where(dl_t.c.event_id == event_id)
    ).all()
    checkpoints = {row.consumer: row.position
                   for row in conn.execute(select(cp_t.c.consumer, cp_t.c.position))}
    return list(acks), list(letters), checkpoints


def _handled(consumer: str, event: StoredEvent, elapsed: float, replay: bool) -> None:
    """The metrics and the log line of one handled event, once its pass has committed."""
    HANDLER_LATENCY.labels(consumer).observe(elapsed)
    EVENTS_HANDLED.labels(consumer, event.type).inc()
    log.info(
        "event_handled",
        consumer=consumer,
        event_id=str(event.id),
        type=event.type,
        stream=event.stream,
        position=event.position,
        replay=replay,
        duration_ms=round(elapsed * 1000, 3),
    )


def _head(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(events_t.c.position), 0))).scalar_one())


def _event_at(conn: Connection, position: int) -> StoredEvent:
    return row_to_event(
        conn.execute(select(events_t).where(events_t.c.position == position)).one()._mapping
    )


def upsert_insert(conn: Connection, table: Any = cp_t) -> Any:
    """An INSERT that supports `.on_conflict_do_nothing()` on both backends."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)
