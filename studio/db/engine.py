"""Engine, metadata and the unit of work: one transaction per change, its events included."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import structlog
from sqlalchemy import (
    DateTime,
    MetaData,
    TypeDecorator,
    create_engine,
    event,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

# The envelope imports nothing of the project; importing it here, not inside emit(),
# spares every emitted event an import statement (about 1 µs, a few percent of an append).
from studio.errors import DatabaseUnavailable
from studio.events.envelope import Event, StoredEvent, follow_up_id

log = structlog.get_logger("studio.db.engine")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type:
        return dt.datetime

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)



def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """Build an engine; nothing connects until first use."""
    if is_sqlite(url):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=20,
            pool_pre_ping=False,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Autocommit at the driver level: we emit BEGIN ourselves so writes can
            # take the lock up front (BEGIN IMMEDIATE) and never fail on upgrade.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Sent on the driver's connection: SQLAlchemy's statement machinery costs several
            # times what BEGIN itself does, and every request begins at least one read.
            mode = conn.info.pop("begin_mode", "DEFERRED")
            conn.connection.driver_connection.execute(f"BEGIN {mode}")  # type: ignore[union-attr]

        return engine

    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=20,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )


class EventLog(Protocol):
    """Where a unit of work appends its events, in its own transaction (the event store)."""

    def append(self, conn: Connection, events: Sequence[Event], /) -> Sequence[Any]: ...


class Ownership(Protocol):
    """Which organization an event stream belongs to (`studio.events.owners.StreamOwners`)."""

    def organization_of(self, conn: Connection, stream: str, /) -> str | None: ...


class UnitOfWork:
    """One write transaction: the state change and the events that describe it.

    Events recorded here are appended to the event store inside the same transaction
    just before commit (transactional outbox), so either both commit or neither does.
    After commit, the callbacks given to `after_commit` run, then the database's own
    (bus wake-up, cache invalidation); after a rollback none of them does.
    """

    def __init__(self, conn: Connection, store: EventLog, context: dict[str, Any],
                 owners: Ownership | None = None):
        self.conn = conn
        self.store = store
        self.context = context
        self.owners = owners
        self.events: list[Event] = []
        self.touched_orgs: set[str] = set()
        self.appended: Sequence[Any] = []
        self.committed: list[Callable[[], None]] = []
        self._cause: tuple[uuid.UUID, str] | None = None
        self._follow_ups: dict[str, int] = {}

    def record(self, event: Event) -> Event:
        self.events.append(event)
        return event

    def emit(
        self,
        type_: str,
        stream: str,
        data: dict[str, Any],
        *,
        expected_version: int | None = None,
        source: str = "backend",
    ) -> Event:
        """Record a domain event whose metadata carries this transaction's context.

        `metadata.organization` is the organization of the object the stream names, read
        through the database's ownership table, never the caller's: a super_admin's change
        in another organization, or a consumer's follow-up event, is filed where the object
        lives. The actor's own organization stays in `actor_organization` when it differs.
        Inside `caused_by` the event's id is derived from its cause (see there)."""
        metadata = {k: v for k, v in self.context.items() if v is not None}
        metadata.setdefault("correlation_id", metadata.get("request_id"))
        if self.owners is not None:
            metadata.pop("organization", None)
            organization = self.owners.organization_of(self.conn, stream)
            if organization is not None:
                metadata["organization"] = organization
        if metadata.get("actor_organization") == metadata.get("organization"):
            metadata.pop("actor_organization", None)
        event = Event(
            type=type_,
            data=data,
            stream=stream,
            source=source,
            metadata=metadata,
            expected_version=expected_version,
        )
        if self._cause is not None:
            cause, consumer = self._cause
            ordinal = self._follow_ups.get(type_, 0)
            self._follow_ups[type_] = ordinal + 1
            event.id = follow_up_id(cause, consumer, type_, ordinal)
            event.deduplicate = True
        return self.record(event)

    @contextmanager
    def caused_by(self, event: StoredEvent, consumer: str) -> Iterator[None]:
        """Events emitted inside are follow-ups of the stored `event`, handled by `consumer`.

        They carry its id as causation id and inherit its correlation id, and the n-th
        event of a type gets the id `follow_up_id(event.id, consumer, type, n)`: handling
        the same event again (a replay, a redelivery) emits the same ids, and the store
        drops such second copies, so a replay adds nothing to the store, the hash chains
        or the transports. The dispatcher wraps every handler call in this."""
        saved = dict(self.context)
        self.context["causation_id"] = str(event.id)
        self.context["correlation_id"] = event.metadata.get("correlation_id") or str(event.id)
        self._cause, self._follow_ups = (event.id, consumer), {}
        try:
            yield
        finally:
            self._cause, self._follow_ups = None, {}
            self.context.clear()
            self.context.update(saved)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this transaction has committed (never after a rollback):
        for what must not claim a change a rollback undid, like a log line."""
        self.committed.append(callback)

    def touch(self, org_id: uuid.UUID | str | None) -> None:
        """Mark an organization's cached reads stale once this transaction commits."""
        self.touched_orgs.add(str(org_id) if org_id else "*")


class Database:
    """Owns the engine; hands out read connections and write units of work."""

    def __init__(
        self,
        url: str,
        store: EventLog,
        *,
        pool_size: int = 10,
        static_metadata: dict[str, str] | None = None,
        owners: Ownership | None = None,
    ):
        self.url = url
        self.static_metadata = static_metadata or {}
        # Which organization each stream belongs to; None (tests of the store alone): the
        # organization is whatever the write's context says.
        self.owners = owners
        self.engine = make_engine(url, pool_size=pool_size)
        self.store = store
        self.dialect = "sqlite" if is_sqlite(url) else "postgresql"
        self.after_commit: list[Callable[[UnitOfWork], None]] = []
        # SQLite admits one writer; queueing this process's writers here instead of in
        # SQLite's busy handler (which sleeps in steps of up to 100 ms) keeps latency low.
        self._write_lock = threading.RLock() if self.dialect == "sqlite" else contextlib.nullcontext()
        self._current_read: ContextVar[Connection | None] = ContextVar(f"read-{id(self)}", default=None)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection. Reads nested inside a read (in the same thread or task)
        share its connection and snapshot: a request that loads its caller and then a
        page checks out, begins and ends one transaction, not two."""
        current = self._current_read.get()
        if current is not None:
            yield current
            return
        try:
            with self.engine.connect() as conn:
                token = self._current_read.set(conn)
                try:
                    yield conn
                finally:
                    self._current_read.reset(token)
                conn.rollback()
        except (OperationalError, DBAPIError) as exc:
            if _is_connection_error(exc):
                raise DatabaseUnavailable(str(exc.orig)) from exc
            raise

    @contextmanager
    def write(self, **context: Any) -> Iterator[UnitOfWork]:
        try:
            with self._write_lock, self.engine.connect() as conn:
                if self.dialect == "sqlite":
                    conn.info["begin_mode"] = "IMMEDIATE"
                with conn.begin():
                    uow = UnitOfWork(conn, self.store, {**self.static_metadata, **context},
                                     self.owners)
                    yield uow
                    if uow.events:
                        uow.appended = self.store.append(conn, uow.events)
        except (OperationalError, DBAPIError) as exc:
            if _is_connection_error(exc):
                raise DatabaseUnavailable(str(exc.orig)) from exc
            raise
        for committed in uow.committed:
            committed()
        for callback in self.after_commit:
            callback(uow)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        self.engine.dispose()


def _is_connection_error(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    text = str(exc.orig).lower()
    return any(
        marker in text
        for marker in (
            "connection refused",
            "could not connect",
            "server closed the connection",
            "terminating connection",
            "connection is closed",
            "the database system is",
            "unable to open database",
            "connection timeout",
            "consuming input failed",
        )
    )
