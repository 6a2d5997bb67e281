"""NATS JetStream transport: API processes relay committed events, workers wake on them.

The database store stays the source of truth. The relay reads the store from the last
position it published (kept in `event_publish_positions`) and publishes each event to
`<prefix>.<type>` with the event id as `Nats-Msg-Id`, so a publish repeated after a
crash or by a second API process is dropped by JetStream's duplicate window. If NATS is
down, writes still commit; the relay keeps its position and catches up on reconnect.

Workers share one durable pull consumer, so each message reaches one worker; a message
wakes that worker's dispatcher, which handles events in store order under the consumer
checkpoint lock. Other workers' dispatchers also poll the store, so a lost or late
message delays delivery by at most the poll interval and never loses an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import nats
import orjson
import structlog
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import NotFoundError
from sqlalchemy import select, update

from studio.db.engine import Database, utcnow
from studio.events.dispatcher import Dispatcher, upsert_insert
from studio.events.metrics import EVENTS_RELAYED
from studio.events.models import event_publish_positions as pub_t
from studio.events.store import EventStore

log = structlog.get_logger("studio.events.nats")

DUPLICATE_WINDOW_SECONDS = 120.0


async def connect(url: str) -> Any:
    return await nats.connect(
        url,
        connect_timeout=2,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        allow_reconnect=True,
    )


async def ensure_stream(js: Any, stream: str, prefix: str) -> None:
    try:
        await js.stream_info(stream)
    except NotFoundError:
        await js.add_stream(
            StreamConfig(
                name=stream, subjects=[f"{prefix}.>"], duplicate_window=DUPLICATE_WINDOW_SECONDS
            )
        )


class _AsyncService:
    """A background thread running one asyncio loop, woken from any thread."""

    thread_name = "studio-nats"

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = threading.Event()
        self.connected = threading.Event()

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self, _uow: Any = None) -> None:
        loop, event = self._loop, self._wake
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def _run(self) -> None:
        asyncio.run(self._supervise())

    async def _supervise(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        delay = 0.2
        while not self._stopping.is_set():
            try:
                await self._serve()
                delay = 0.2
            except Exception as exc:
                self.connected.clear()
                log.warning(f"{self.thread_name}_error", error=repr(exc))
                await self._sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _serve(self) -> None:
        raise NotImplementedError


class NatsRelay(_AsyncService):
    """Publishes the store, in position order, onto JetStream (runs in API processes)."""

    thread_name = "studio-nats-relay"

    def __init__(self, db: Database, url: str, stream: str, prefix: str, *, batch: int = 500):
        super().__init__()
        self.db, self.url, self.stream, self.prefix, self.batch = db, url, stream, prefix, batch
        self.name = f"nats:{stream}"
        self.store = EventStore()

    async def _serve(self) -> None:
        nc = await connect(self.url)
        try:
            js = nc.jetstream(timeout=2)
            await ensure_stream(js, self.stream, self.prefix)
            self.connected.set()
            while not self._stopping.is_set():
                sent = await self.publish_pending(js)
                if sent < self.batch:
                    await self._sleep(0.5)
        finally:
            self.connected.clear()
            with contextlib.suppress(Exception):
                await nc.close()

    async def publish_pending(self, js: Any) -> int:
        position, events = await asyncio.to_thread(self._pending)
        for ev in events:
            await js.publish(
                f"{self.prefix}.{ev.type}",
                orjson.dumps(ev.to_wire()),
                headers={"Nats-Msg-Id": str(ev.id)},
            )
            EVENTS_RELAYED.inc()
        if events:
            await asyncio.to_thread(self._advance, events[-1].position)
        return len(events)

    def _pending(self) -> tuple[int, list[Any]]:
        with self.db.read() as conn:
            position = (
                conn.execute(select(pub_t.c.position).where(pub_t.c.name == self.name)).scalar()
                or 0
            )
            return position, self.store.read(conn, after=position, limit=self.batch)

    def _advance(self, position: int) -> None:
        with self.db.write() as uow:
            conn = uow.conn
            stmt = upsert_insert(conn, pub_t).values(
                name=self.name, position=0, updated_at=utcnow()
            )
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
            # Two relays may race; the position only moves forward.
            conn.execute(
                update(pub_t)
                .where(pub_t.c.name == self.name, pub_t.c.position < position)
                .values(position=position, updated_at=utcnow())
            )


class NatsWorker(_AsyncService):
    """Wakes a dispatcher on each JetStream message (runs in `studio worker`)."""

    thread_name = "studio-nats-worker"

    def __init__(
        self,
        dispatcher: Dispatcher,
        url: str,
        stream: str,
        prefix: str,
        durable: str = "studio-workers",
    ):
        super().__init__()
        self.dispatcher, self.url, self.stream, self.prefix, self.durable = (
            dispatcher,
            url,
            stream,
            prefix,
            durable,
        )
        self.received = 0

    async def _serve(self) -> None:
        nc = await connect(self.url)
        try:
            js = nc.jetstream(timeout=2)
            await ensure_stream(js, self.stream, self.prefix)
            sub = await js.pull_subscribe(
                f"{self.prefix}.>",
                durable=self.durable,
                stream=self.stream,
                config=ConsumerConfig(
                    ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.NEW, ack_wait=30
                ),
            )
            self.connected.set()
            while not self._stopping.is_set():
                try:
                    messages = await sub.fetch(100, timeout=0.5)
                except TimeoutError:
                    continue
                if messages:
                    self.received += len(messages)
                    self.dispatcher.wake()
                    for msg in messages:
                        await msg.ack()
        finally:
            self.connected.clear()
            with contextlib.suppress(Exception):
                await nc.close()
