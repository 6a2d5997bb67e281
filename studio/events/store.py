"""The persistent event store: append inside the caller's transaction, read by position."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, func, insert, or_, select
from sqlalchemy.engine import Connection

from studio.errors import VersionConflict
from studio.events.envelope import (
    GENESIS_HASH,
    Event,
    StoredEvent,
    canonical_json,
    chain_hash,
    hashed_fields,
    iso_utc,
)
from studio.events.models import events as events_t
from studio.events.models import streams as streams_t


@dataclass(slots=True)
class _Head:
    version: int
    last_hash: str
    exists: bool
    organization: str | None = None


class EventStore:
    """Appends events gap-free in commit order and chains each stream's hashes.

    Guarantees:
    - `append` runs in the caller's transaction: events commit with the state change
      they describe or not at all (transactional outbox).
    - Positions are gap-free and increase in commit order, on SQLite (one writer at a
      time, BEGIN IMMEDIATE) and on PostgreSQL (an EXCLUSIVE lock on the events table,
      taken only at append time, which is the last step before commit). A reader that
      tails `position > last_seen` therefore never misses an event.
    - Within a stream, versions are 1, 2, 3 ... and an event carrying
      `expected_version` fails with VersionConflict unless the stream is exactly there.
    - A stream belongs to one organization, fixed by its first event's
      `metadata.organization` (the unit of work puts the owner of the stream's object
      there); every event of the stream is filed under it (`events.organization_id`, the
      column the trail of an organization is read by).
    - An event marked `deduplicate` whose id is already stored (a follow-up event emitted
      again by a replay) is dropped: no position, no stream version, no hash-chain link,
      nothing to relay. Only the events actually appended are returned.
    """

    def append(self, conn: Connection, batch: Sequence[Event]) -> list[StoredEvent]:
        if not batch:
            return []
        for ev in batch:
            ev.validate()
        if conn.dialect.name == "postgresql":
            # Readers are not blocked by EXCLUSIVE; other appenders wait until we commit.
            conn.exec_driver_sql("LOCK TABLE events IN EXCLUSIVE MODE")
        sqlite = conn.dialect.name == "sqlite"
        # Read under the append lock: a copy committed by another appender is visible.
        seen = self._stored_ids(conn, [ev.id for ev in batch if ev.deduplicate], sqlite)
        if seen:
            batch = [ev for ev in batch if not (ev.deduplicate and ev.id in seen)]
        if any(ev.deduplicate for ev in batch):
            batch = _first_copies(batch)
        if not batch:
            return []
        position = _sql(conn, "SELECT coalesce(max(position), 0) FROM events").scalar_one()
        heads = self._load_heads(conn, {ev.stream for ev in batch})
        rows: list[tuple[Any, ...]] = []
        stored: list[StoredEvent] = []
        last_position: dict[str, int] = {}
        for ev in batch:
            head = heads[ev.stream]
            if ev.expected_version is not None and ev.expected_version != head.version:
                raise VersionConflict(ev.stream, ev.expected_version, head.version)
            meta = ev.metadata
            if head.version == 0:
                owner = meta.get("organization")
                head.organization = None if owner is None else str(owner)
            position += 1
            stream_version = head.version + 1
            timestamp = iso_utc(ev.timestamp)
            # Serialised once: the stored columns are the very text the hash covers.
            data = canonical_json(ev.data)
            metadata = canonical_json(ev.metadata)
            canonical = canonical_json(
                hashed_fields(
                    position=position,
                    event_id=ev.id,
                    type_=ev.type,
                    stream=ev.stream,
                    stream_version=stream_version,
                    timestamp=timestamp,
                    source=ev.source,
                    version=ev.version,
                    data=orjson.Fragment(data),
                    metadata=orjson.Fragment(metadata),
                )
            )
            digest = chain_hash(head.last_hash, canonical)
            actor = meta.get("actor")
            rows.append((
                position,
                ev.id.hex if sqlite else ev.id,
                ev.type,
                ev.stream,
                stream_version,
                _sqlite_time(ev.timestamp, timestamp) if sqlite else ev.timestamp,
                ev.source,
                ev.version,
                None if actor is None else str(actor),
                head.organization,
                data.decode(),
                metadata.decode(),
                head.last_hash,
                digest,
            ))
            stored.append(
                StoredEvent(
                    position,
                    ev.id,
                    ev.type,
                    ev.stream,
                    stream_version,
                    ev.timestamp,
                    ev.source,
                    ev.version,
                    ev.data,
                    meta,
                    head.last_hash,
                    digest,
                    head.organization,
                )
            )
            head.version = stream_version
            head.last_hash = digest
            last_position[ev.stream] = position
        _insert_rows(conn, rows)
        # One statement per kind, whatever the number of streams in the batch.
        changed = [
            (head.version, head.last_hash, last_position[stream], stream)
            for stream, head in heads.items() if head.exists
        ]
        created = [
            (stream, head.version, head.last_hash, last_position[stream], head.organization)
            for stream, head in heads.items() if not head.exists
        ]
        if changed:
            _sql(conn, "UPDATE event_streams SET version = ?, last_hash = ?, last_position = ? "
                       "WHERE stream = ?", changed)
        if created:
            _sql(conn, "INSERT INTO event_streams (stream, version, last_hash, last_position, "
                       "organization_id) VALUES (?, ?, ?, ?, ?)", created)
        return stored

    @staticmethod
    def _load_heads(conn: Connection, names: set[str]) -> dict[str, _Head]:
        heads = {name: _Head(version=0, last_hash=GENESIS_HASH, exists=False) for name in names}
        marks = ", ".join("?" * len(names))
        rows = _sql(conn, f"SELECT stream, version, last_hash, organization_id "  # noqa: S608
                          f"FROM event_streams WHERE stream IN ({marks})", tuple(names))
        for stream, version, last_hash, organization in rows:
            heads[stream] = _Head(version, last_hash, True, organization)
        return heads

    @staticmethod
    def _stored_ids(conn: Connection, ids: list[uuid.UUID], sqlite: bool) -> set[uuid.UUID]:
        """Which of these event ids are already stored: as an event's id, or as the derived
        id of a follow-up event stored with a random one before ids were derived (0008)."""
        if not ids:
            return set()
        marks = ", ".join("?" * len(ids))
        params = tuple(i.hex if sqlite else i for i in ids)
        rows = _sql(conn, f"SELECT id FROM events WHERE id IN ({marks}) "  # noqa: S608
                          f"UNION SELECT id FROM event_follow_up_ids WHERE id IN ({marks})",
                    params + params)
        return {value if isinstance(value, uuid.UUID) else uuid.UUID(value) for (value,) in rows}

    @staticmethod
    def _load_head(conn: Connection, stream: str) -> _Head:
        row = conn.execute(
            select(streams_t.c.version, streams_t.c.last_hash).where(streams_t.c.stream == stream)
        ).first()
        if row is None:
            return _Head(version=0, last_hash=GENESIS_HASH, exists=False)
        return _Head(version=row.version, last_hash=row.last_hash, exists=True)

    def head_position(self, conn: Connection) -> int:
        head = select(func.coalesce(func.max(events_t.c.position), 0))
        return int(conn.execute(head).scalar_one())

    def stream_version(self, conn: Connection, stream: str) -> int:
        return self._load_head(conn, stream).version

    def read(
        self,
        conn: Connection,
        *,
        after: int = 0,
        limit: int = 500,
        types: Iterable[str] | None = None,
        stream: str | None = None,
        actor: str | None = None,
        organization: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[StoredEvent]:
        """Events after a position, oldest first, optionally filtered."""
        query = select(events_t).where(events_t.c.position > after)
        type_list = list(types or [])
        exact = [t for t in type_list if not t.endswith("*")]
        prefixes = [t[:-1] for t in type_list if t.endswith("*")]
        if type_list and "*" not in type_list:
            conditions: list[ColumnElement[bool]] = []
            if exact:
                conditions.append(events_t.c.type.in_(exact))
            conditions.extend(events_t.c.type.startswith(p, autoescape=True) for p in prefixes)
            query = query.where(or_(*conditions))
        if stream is not None:
            query = query.where(events_t.c.stream == stream)
        if actor is not None:
            query = query.where(events_t.c.actor_id == actor)
        if organization is not None:
            query = query.where(events_t.c.organization_id == organization)
        if since is not None:
            query = query.where(events_t.c.timestamp >= since)
        if until is not None:
            query = query.where(events_t.c.timestamp < until)
        query = query.order_by(events_t.c.position).limit(limit)
        return [row_to_event(row._mapping) for row in conn.execute(query)]

    def get(self, conn: Connection, event_id: uuid.UUID) -> StoredEvent | None:
        row = conn.execute(select(events_t).where(events_t.c.id == event_id)).first()
        return row_to_event(row._mapping) if row else None


def row_to_event(row: Any) -> StoredEvent:
    return StoredEvent(
        position=row["position"],
        id=row["id"],
        type=row["type"],
        stream=row["stream"],
        stream_version=row["stream_version"],
        timestamp=row["timestamp"],
        source=row["source"],
        version=row["version"],
        data=orjson.loads(row["data"]),
        metadata=orjson.loads(row["metadata"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
        organization=row["organization_id"],
    )


def _first_copies(batch: Sequence[Event]) -> list[Event]:
    """The batch without second copies of a deduplicated id (one handling emitted it twice)."""
    ids: set[uuid.UUID] = set()
    kept = []
    for ev in batch:
        if ev.deduplicate and ev.id in ids:
            continue
        ids.add(ev.id)
        kept.append(ev)
    return kept


_COLUMNS = ("position", "id", "type", "stream", "stream_version", "timestamp", "source", "version",
            "actor_id", "organization_id", "data", "metadata", "prev_hash", "hash")
# Built from the constant column list above only.
_INSERT_SQL = {
    style: f"INSERT INTO events ({', '.join(_COLUMNS)}) VALUES ({', '.join([mark] * len(_COLUMNS))})"  # noqa: S608
    for style, mark in (("qmark", "?"), ("format", "%s"), ("pyformat", "%s"))
}


def _sql(conn: Connection, sql: str, params: Any = ()) -> Any:
    """A driver-level statement on the append path (SQLAlchemy's statement building and
    caching cost more than the query itself here). `?` placeholders; values are plain
    strings and integers, so no type processing is skipped."""
    if conn.dialect.paramstyle in ("format", "pyformat"):
        sql = sql.replace("?", "%s")
    return conn.exec_driver_sql(sql, params)


def _insert_rows(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """One driver-level executemany: the append path's hottest statement, so the per-row
    bind processing of the Core insert is done by the caller once, by hand (SQLite gets
    the values exactly as SQLAlchemy's Uuid and UTCDateTime types store them)."""
    sql = _INSERT_SQL.get(conn.dialect.paramstyle)
    if sql is None:
        conn.execute(insert(events_t), [dict(zip(_COLUMNS, row, strict=True)) for row in rows])
    else:
        conn.exec_driver_sql(sql, rows)


def _sqlite_time(moment: dt.datetime, iso: str) -> str:
    """UTCDateTime's SQLite text (naive UTC, `YYYY-MM-DD HH:MM:SS.ffffff`), from the
    event's `iso_utc` text when that has a four-digit year."""
    if len(iso) == 27:
        return f"{iso[:10]} {iso[11:26]}"
    return moment.astimezone(dt.UTC).isoformat(sep=" ", timespec="microseconds")[:26]
