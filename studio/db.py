"""Engine, metadata and the unit of work: one transaction per change, its events included."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import (
    JSON,
    DateTime,
    MetaData,
    TypeDecorator,
    create_engine,
    event,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError

# The envelope imports nothing of the project; importing it here, not inside emit(),
# spares every emitted event an import statement (about 1 µs, a few percent of an append).
from studio.events.envelope import Event

if TYPE_CHECKING:
    from studio.events.store import EventStore

log = structlog.get_logger("studio.db")

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


JSONType = JSON()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class DatabaseUnavailable(Exception):
    """The database cannot be reached; the API answers 503."""


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
            mode = conn.info.pop("begin_mode", "DEFERRED")
            if mode == "DEFERRED":
                # Reads: straight to the driver. SQLAlchemy's statement path costs several
                # times what BEGIN itself does, on every request; a deferred BEGIN takes no lock.
                conn.connection.driver_connection.execute("BEGIN DEFERRED")  # type: ignore[union-attr]
            else:
                conn.exec_driver_sql(f"BEGIN {mode}")

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


class UnitOfWork:
    """One write transaction: the state change and the events that describe it.

    Events recorded here are appended to the event store inside the same transaction
    just before commit (transactional outbox), so either both commit or neither does.
    After commit, the `after_commit` callbacks run (bus wake-up, cache invalidation).
    """

    def __init__(self, conn: Connection, store: EventStore, context: dict[str, Any]):
        self.conn = conn
        self.store = store
        self.context = context
        self.events: list[Event] = []
        self.touched_orgs: set[str] = set()
        self.appended: list[Any] = []

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
        """Record a domain event whose metadata carries this transaction's context."""
        metadata = {k: v for k, v in self.context.items() if v is not None}
        metadata.setdefault("correlation_id", metadata.get("request_id"))
        return self.record(
            Event(
                type=type_,
                data=data,
                stream=stream,
                source=source,
                metadata=metadata,
                expected_version=expected_version,
            )
        )

    def touch(self, org_id: uuid.UUID | str | None) -> None:
        """Mark an organization's cached reads stale once this transaction commits."""
        self.touched_orgs.add(str(org_id) if org_id else "*")


class LoopReadAborted(Exception):
    """A read on the event loop thread gave up (statement timeout, connection trouble or
    no free connection); the caller runs it again in a worker thread."""


def make_loop_read_engine(url: str, timeout_ms: int) -> Engine:
    """PostgreSQL connections for short reads run on the event loop thread: autocommit
    (no BEGIN/ROLLBACK round trips), read-only, no ping per checkout, and a statement
    timeout that bounds how long a read may hold the loop."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        pool_reset_on_return=None,
        # One loop runs one read at a time; a few more for several loops in one process.
        pool_size=2,
        max_overflow=6,
        pool_timeout=0.05,
        pool_pre_ping=False,
        connect_args={
            "connect_timeout": 2,
            "options": f"-c statement_timeout={timeout_ms} -c default_transaction_read_only=on",
        },
    )


class Database:
    """Owns the engine; hands out read connections and write units of work."""

    # After a read on the loop gives up, reads go to worker threads for this long.
    LOOP_READ_PAUSE_SECONDS = 5.0

    def __init__(
        self,
        url: str,
        store: EventStore,
        *,
        pool_size: int = 10,
        static_metadata: dict[str, str] | None = None,
        loop_read_timeout_ms: int = 250,
    ):
        self.url = url
        self.static_metadata = static_metadata or {}
        self.engine = make_engine(url, pool_size=pool_size)
        self.store = store
        self.dialect = "sqlite" if is_sqlite(url) else "postgresql"
        self.after_commit: list[Callable[[UnitOfWork], None]] = []
        # SQLite admits one writer; queueing this process's writers here instead of in
        # SQLite's busy handler (which sleeps in steps of up to 100 ms) keeps latency low.
        self._write_lock = threading.RLock() if self.dialect == "sqlite" else contextlib.nullcontext()
        self._current_read: ContextVar[Connection | None] = ContextVar(f"read-{id(self)}", default=None)
        self.loop_read_timeout_ms = loop_read_timeout_ms
        self._loop_engine: Engine | None = None
        self._loop_engine_lock = threading.Lock()
        self._loop_reads_paused_until = 0.0

    def loop_reads_enabled(self) -> bool:
        """Whether a short read may run on the event loop thread now: always on SQLite
        (a local file read); on PostgreSQL unless one recently gave up."""
        return self.dialect == "sqlite" or time.monotonic() >= self._loop_reads_paused_until

    @contextmanager
    def loop_read(self) -> Iterator[Connection]:
        """A read connection for work done on the event loop thread (see `run_read` in
        studio/api.py). On PostgreSQL it comes from a small autocommit, read-only pool
        whose statements time out after `loop_read_timeout_ms`; any timeout, connection
        error or empty pool raises LoopReadAborted (after pausing loop reads for a while)
        so that the caller can run the same read in a worker thread instead. Being
        autocommit, each statement sees the latest commit (as each statement of a READ
        COMMITTED transaction does; no snapshot is shared between them)."""
        if self.dialect == "sqlite" or self._current_read.get() is not None:
            with self.read() as conn:
                yield conn
            return
        engine = self._loop_engine
        if engine is None:
            with self._loop_engine_lock:
                if self._loop_engine is None:
                    self._loop_engine = make_loop_read_engine(self.url, self.loop_read_timeout_ms)
                engine = self._loop_engine
        try:
            with engine.connect() as conn:
                token = self._current_read.set(conn)
                try:
                    yield conn
                finally:
                    self._current_read.reset(token)
        except (DBAPIError, SATimeoutError) as exc:
            # A statement timeout, a lost connection or a pool with no free connection.
            # Errors of the query itself (a bug) would fail in the thread too: re-raised.
            if isinstance(exc, DBAPIError) and not (
                _is_connection_error(exc) or _is_statement_timeout(exc)
            ):
                raise
            self._loop_reads_paused_until = time.monotonic() + self.LOOP_READ_PAUSE_SECONDS
            log.warning("loop_read_aborted", error=str(exc).splitlines()[0][:200],
                        paused_seconds=self.LOOP_READ_PAUSE_SECONDS)
            raise LoopReadAborted(str(exc)) from exc

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
                    uow = UnitOfWork(conn, self.store, {**self.static_metadata, **context})
                    yield uow
                    if uow.events:
                        uow.appended = self.store.append(conn, uow.events)
        except (OperationalError, DBAPIError) as exc:
            if _is_connection_error(exc):
                raise DatabaseUnavailable(str(exc.orig)) from exc
            raise
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
        if self._loop_engine is not None:
            self._loop_engine.dispose()


def _is_statement_timeout(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "57014"  # query_canceled


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
