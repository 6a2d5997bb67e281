"""Tables of the event store: the events, and each stream's head (version and hash)."""

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)

from studio.db import UTCDateTime, metadata

events = Table(
    "events",
    metadata,
    # Assigned by the store under the append lock: gap-free and in commit order.
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("id", Uuid, nullable=False, unique=True),
    Column("type", String(100), nullable=False),
    Column("stream", String(100), nullable=False),
    Column("stream_version", Integer, nullable=False),
    Column("timestamp", UTCDateTime, nullable=False),
    Column("source", String(100), nullable=False),
    Column("version", String(20), nullable=False),
    Column("actor_id", String(64), nullable=True),
    Column("organization_id", String(64), nullable=True),
    # Canonical JSON text, exactly the bytes the hash chain covers.
    Column("data", Text, nullable=False),
    Column("metadata", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("stream", "stream_version", name="uq_events_stream_version"),
    Index("ix_events_type_position", "type", "position"),
    Index("ix_events_actor_position", "actor_id", "position"),
    Index("ix_events_timestamp", "timestamp"),
)

streams = Table(
    "event_streams",
    metadata,
    Column("stream", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("last_position", BigInteger, nullable=False),
)
