"""The append path's fast construction of the hashed form is byte for byte the released
canonical form (`canonical_json(hashed_fields(...))`, docs/events.md), and the schema
change of migration 0006 keeps every stored event and its chain."""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from studio.db.engine import Database, make_engine
from studio.db.migrate import alembic_config, upgrade
from studio.events.audit import verify
from studio.events.envelope import (
    Event,
    canonical_json,
    chain_hash,
    hashed_fields,
    iso_utc,
    uuid7,
)
from studio.events.store import EventStore
from tests.events_support import emit

# What JSON carries, as orjson serialises it: 64-bit integers, floats (NaN and infinities
# become null in both constructions), any non-surrogate text, nested lists and objects.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
objects = st.dictionaries(st.text(), json_values, max_size=6)
# Keys that need sorting beyond ASCII order: accents, CJK, astral characters, case.
keys = st.sampled_from(["b", "a", "B", "é", "e\u0301", "中", "😀", "actor", "organization", ""])
metadata_objects = st.dictionaries(keys | st.text(), json_values, max_size=6)
names = st.text(min_size=1, max_size=40)
moments = st.builds(
    lambda naive, minutes: naive.replace(tzinfo=dt.timezone(dt.timedelta(minutes=minutes))),
    st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31)),
    st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
)


@given(moments)
def test_iso_utc_is_the_released_strftime_form(moment):
    assert iso_utc(moment) == moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture(scope="module")
def sqlite_db(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    path = tmp_path_factory.mktemp("canonical") / "studio.db.engine"
    shutil.copy(sqlite_template, path)
    db = Database(f"sqlite:///{path}", EventStore())
    yield db
    db.dispose()


@settings(max_examples=300, deadline=None)
@given(
    data=objects,
    metadata=metadata_objects,
    moment=moments,
    type_=names,
    stream=names,
    source=names,
    version=st.text(min_size=1, max_size=20),
)
def test_appended_hash_covers_the_released_canonical_form(
    sqlite_db, data, metadata, moment, type_, stream, source, version
):
    event = Event(type=type_, data=data, stream=stream, timestamp=moment, source=source,
                  version=version, metadata=metadata)
    with sqlite_db.write() as uow:
        uow.record(event)
    (stored,) = uow.appended
    released = canonical_json(
        hashed_fields(
            position=stored.position,
            event_id=event.id,
            type_=type_,
            stream=stream,
            stream_version=stored.stream_version,
            timestamp=moment,
            source=source,
            version=version,
            data=data,
            metadata=metadata,
        )
    )
    assert stored.hash == chain_hash(stored.prev_hash, released)
    with sqlite_db.read() as conn:
        row = conn.execute(
            text("SELECT data, metadata, hash, prev_hash FROM events WHERE position = :p"),
            {"p": stored.position},
        ).one()
        got = sqlite_db.store.get(conn, event.id)
        # The audit, which recomputes with the released construction, agrees.
        report = verify(conn, stream=stream)
    assert (row.data, row.metadata) == (canonical_json(data).decode(), canonical_json(metadata).decode())
    assert (row.hash, row.prev_hash) == (stored.hash, stored.prev_hash)
    # The stored timestamp reads back as the same instant the hash covers.
    assert got is not None and got.timestamp == moment
    assert report.ok, report.breaks


def test_event_ids_are_time_ordered_version_7_uuids():
    ids = [uuid7() for _ in range(2000)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert len(set(ids)) == len(ids)
    # Milliseconds since the epoch lead, so ids sort by creation time (sub-millisecond
    # order may tie only within one 244 ns step of the clock).
    assert [i.int >> 80 for i in ids] == sorted(i.int >> 80 for i in ids)
    assert Event(type="t", data={}, stream="s").id.version == 7


def test_migration_0006_keeps_events_positions_and_chains(tmp_path):
    """An SQLite database written before 0006 (position BIGINT beside the rowid) keeps its
    events, positions and chains through the rebuild, and appends continue gap-free."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0005")
    db = Database(url, EventStore())
    # Today's store also records each stream's organization (0008): give the old schema
    # that column while writing, then take it away again.
    with db.write() as uow:
        uow.conn.execute(text("ALTER TABLE event_streams ADD COLUMN organization_id VARCHAR(64)"))
    emit(db, "evidence.created", "project:a", 3)
    emit(db, "evidence.created", "project:b", 2)
    with db.write() as uow:
        uow.conn.execute(text("ALTER TABLE event_streams DROP COLUMN organization_id"))
    with db.read() as conn:
        before = conn.execute(text("SELECT * FROM events ORDER BY position")).all()
    db.dispose()

    upgrade(engine)
    db = Database(url, EventStore())
    try:
        with db.read() as conn:
            assert conn.execute(text("SELECT * FROM events ORDER BY position")).all() == before
            assert conn.execute(text("SELECT rowid FROM events ORDER BY position")).scalars().all() == [
                1, 2, 3, 4, 5]
            indexes = conn.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")).scalars().all()
        # The id and (stream, version) uniques and the three query indexes stay, the
        # organization's (0008) is added; the primary-key index is gone (the rowid is the
        # position).
        assert len(indexes) == 6
        emit(db, "evidence.created", "project:a", 2)
        with db.read() as conn:
            assert conn.execute(text("SELECT position FROM events ORDER BY position")).scalars().all() == [
                1, 2, 3, 4, 5, 6, 7]
            report = verify(conn)
            chained = conn.execute(text("SELECT position, hash, prev_hash FROM events ORDER BY position")).all()
        assert report.ok and report.events == 7, report.breaks
    finally:
        db.dispose()

    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    db = Database(url, EventStore())
    try:
        with db.read() as conn:
            # The verified events come back unchanged (today's verifier reads the columns
            # of 0008, which the old schema lacks).
            assert conn.execute(text("SELECT position, hash, prev_hash FROM events ORDER BY position")
                                ).all() == chained
    finally:
        db.dispose()
        engine.dispose()

