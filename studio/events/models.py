"""Tables of the event store: events, stream heads, consumer checkpoints, acks, dead letters."""

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

from studio.db.engine import UTCDateTime, metadata

events = Table(
    "events",
    metadata,
    # Assigned by the store under the append lock: gap-free and in commit order. On SQLite
    # an INTEGER primary key is the rowid (64-bit, so no narrower than BIGINT): the table's
    # own B-tree is keyed by position, with no separate primary-key index (migration 0006).
    Column(
        "position",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("id", Uuid, nullable=False, unique=True),
    Column("type", String(100), nullable=False),
    Column("stream", String(100), nullable=False),
    Column("stream_version", Integer, nullable=False),
    Column("timestamp", UTCDateTime, nullable=False),
    Column("source", String(100), nullable=False),
    Column("version", String(20), nullable=False),
    Column("actor_id", String(64), nullable=True),
    # The organization whose trail holds the event: its stream's (event_streams), which is
    # the organization of the object the stream is about, whoever acted. Not hashed: the
    # verifier checks it against the stream's instead (migration 0008, docs/events.md).
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
    Index("ix_events_organization_position", "organization_id", "position"),
)

streams = Table(
    "event_streams",
    metadata,
    Column("stream", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("last_position", BigInteger, nullable=False),
    # Fixed by the stream's first event; NULL for installation-wide streams (the shared
    # framework catalog, sign-in failures of unknown users).
    Column("organization_id", String(64), nullable=True),
)

# The id a follow-up event stored before migration 0008 would have been given by
# `follow_up_id` (it has a random one): a replay that emits it again is recognised as a
# second copy, as for the events stored since.
event_follow_up_ids = Table(
    "event_follow_up_ids",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("position", BigInteger, nullable=False),
)

# Per consumer: every event at or below `position` has been handled, skipped (not
# subscribed), or moved to `event_dead_letters`. Updated in the handler's transaction.
consumer_checkpoints = Table(
    "consumer_checkpoints",
    metadata,
    Column("consumer", String(100), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# One row per (consumer, event) handled: the acknowledgments the API reports.
event_acks = Table(
    "event_acks",
    metadata,
    Column("consumer", String(100), primary_key=True),
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", Uuid, nullable=False),
    Column("handled_at", UTCDateTime, nullable=False),
    Index("ix_event_acks_event_id", "event_id"),
)

# Events a consumer has not handled yet although its checkpoint passed them:
# 'retrying' (failed, next attempt at next_attempt_at), 'parked' (gave up after the
# configured attempts), 'blocked' (waits behind an earlier event of the same stream).
event_dead_letters = Table(
    "event_dead_letters",
    metadata,
    Column("consumer", String(100), primary_key=True),
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", Uuid, nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("stream", String(100), nullable=False),
    Column("status", String(10), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_event_dead_letters_stream", "consumer", "stream", "position"),
    Index("ix_event_dead_letters_status", "status", "next_attempt_at"),
)

# How far each publisher (the NATS relay) has carried the store onto its transport.
event_publish_positions = Table(
    "event_publish_positions",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
