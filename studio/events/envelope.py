"""The event envelope and its canonical JSON form (frozen: the hash chain depends on it)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

GENESIS_HASH = "0" * 64
DEFAULT_VERSION = "1.0"


def iso_utc(moment: dt.datetime) -> str:
    """ISO-8601 in UTC with microseconds and a Z suffix, the one timestamp form on the wire."""
    moment = moment.astimezone(dt.UTC)
    if moment.year < 1000:
        # The released form is strftime's, which does not pad such years to four digits
        # on every platform; isoformat (three times faster, on the append path) always does.
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.isoformat(timespec="microseconds")[:26] + "Z"


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7: Unix milliseconds, 12 bits of sub-millisecond
    fraction, 62 random bits). Event ids increase with time, so the unique index on
    `events.id` grows at its right edge instead of rewriting a random page per event."""
    ms, ns = divmod(time.time_ns(), 1_000_000)
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (ns * 4096 // 1_000_000) << 64
        | 0x2 << 62
        | int.from_bytes(os.urandom(8)) & 0x3FFF_FFFF_FFFF_FFFF
    )
    return uuid.UUID(int=value)


def follow_up_id(cause: uuid.UUID, consumer: str, type_: str, ordinal: int) -> uuid.UUID:
    """The id of the `ordinal`-th `type_` event a consumer emits while handling the event
    `cause` (RFC 9562 version 8: the first 122 bits of a SHA-256 of those four values).

    Handling the same event again (a replay, a redelivery after a crash) derives the same
    ids, so the store recognises the copies and drops them. Frozen like the canonical form:
    changed, it would make every replay emit each follow-up event once more."""
    digest = hashlib.sha256(
        b"\0".join((cause.bytes, consumer.encode(), type_.encode(), str(ordinal).encode()))
    ).digest()
    value = int.from_bytes(digest[:16]) & ~(0xF << 76) & ~(0x3 << 62) | 0x8 << 76 | 0x2 << 62
    return uuid.UUID(int=value)


def canonical_json(value: Any) -> bytes:
    """Canonical JSON: UTF-8, keys sorted, no whitespace, non-ASCII kept as is.

    This form must never change once released: every stored hash depends on it.
    Values are limited to what JSON carries (str, int, float, bool, None, list, dict).
    """
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


class InvalidEvent(ValueError):
    """An envelope that cannot be published (missing id or type, bad field)."""


@dataclass(slots=True)
class Event:
    """One domain event, as published. The store adds position, stream version and hashes."""

    type: str
    data: dict[str, Any]
    stream: str
    id: uuid.UUID = field(default_factory=uuid7)
    timestamp: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    source: str = "backend"
    version: str = DEFAULT_VERSION
    metadata: dict[str, Any] = field(default_factory=dict)
    expected_version: int | None = None
    # The id is derived from the event's cause (`follow_up_id`): if an event with this id is
    # already stored, this one is a second copy and the store drops it.
    deduplicate: bool = False

    def validate(self) -> None:
        if not isinstance(self.id, uuid.UUID):
            raise InvalidEvent("event id must be a UUID")
        if not self.type or not isinstance(self.type, str) or len(self.type) > 100:
            raise InvalidEvent("event type is required (1-100 characters)")
        if not self.stream or len(self.stream) > 100:
            raise InvalidEvent("event stream is required (1-100 characters)")
        if not isinstance(self.data, dict):
            raise InvalidEvent("event data must be an object")
        if self.timestamp.tzinfo is None:
            raise InvalidEvent("event timestamp must be timezone-aware")
        if not self.source:
            self.source = "backend"
        if not self.version:
            self.version = DEFAULT_VERSION


@dataclass(slots=True, frozen=True)
class StoredEvent:
    """An event as the store holds it."""

    position: int
    id: uuid.UUID
    type: str
    stream: str
    stream_version: int
    timestamp: dt.datetime
    source: str
    version: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    prev_hash: str
    hash: str
    # The organization whose trail holds the event: its stream's (events.organization_id).
    # Not hashed; events filed before migration 0008 may name another one in metadata.
    organization: str | None = None

    @property
    def actor_id(self) -> str | None:
        return self.metadata.get("actor")

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "type": self.type,
            "data": self.data,
            "timestamp": iso_utc(self.timestamp),
            "source": self.source,
            "version": self.version,
            "metadata": self.metadata,
            "position": self.position,
            "stream": self.stream,
            "streamVersion": self.stream_version,
            "hash": self.hash,
            "prevHash": self.prev_hash,
        }


def hashed_fields(
    *,
    position: int,
    event_id: uuid.UUID,
    type_: str,
    stream: str,
    stream_version: int,
    timestamp: dt.datetime | str,
    source: str,
    version: str,
    data: dict[str, Any] | orjson.Fragment,
    metadata: dict[str, Any] | orjson.Fragment,
) -> dict[str, Any]:
    """The exact object whose canonical JSON is chained (see docs/events.md).

    `timestamp` may be given as its `iso_utc` text, and `data`/`metadata` as an
    `orjson.Fragment` of their `canonical_json`: the store serialises each once and
    stores the same text it hashes."""
    return {
        "position": position,
        "id": str(event_id),
        "type": type_,
        "stream": stream,
        "streamVersion": stream_version,
        "timestamp": timestamp if isinstance(timestamp, str) else iso_utc(timestamp),
        "source": source,
        "version": version,
        "data": data,
        "metadata": metadata,
    }


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    """h_n = SHA-256(h_{n-1} || canonical event), hex encoded."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest()
