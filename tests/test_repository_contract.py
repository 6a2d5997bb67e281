"""The Repository contract, once, run against SQLite and PostgreSQL.

The suite works on a table of its own (created in the per-test database, never migrated)
so it exercises the base class alone, with deliberately tied sort values.
"""

from __future__ import annotations

import base64
import datetime as dt
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, Uuid, insert
from sqlalchemy.engine import Connection, Engine

from studio.db.engine import UTCDateTime, make_engine
from studio.db.repository import Repository, encode_cursor
from studio.errors import AppError
from tests.conftest import make_database_url

contract_metadata = MetaData()
things = Table(
    "contract_things",
    contract_metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("colour", String(20), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False, default=1),
)

COLOURS = ("red", "green", "blue")
BASE_TIME = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class ThingRepository(Repository):
    table = things
    sortable = frozenset({"created_at", "name", "rank"})


def thing(i: int, **overrides: Any) -> dict[str, Any]:
    # Few distinct ranks and timestamps: most sort values are shared by many rows, so the
    # id tie-breaker carries the pagination.
    return {"id": uuid.uuid4(), "name": f"thing {i:05d}", "colour": COLOURS[i % 3], "rank": i % 7,
            "created_at": BASE_TIME + dt.timedelta(seconds=i % 11, microseconds=123),
            "version": 1, **overrides}


class RepositoryContract:
    """Every backend's Repository must pass exactly these tests."""

    backend: str

    @pytest.fixture
    def engine(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
        urls = make_database_url(self.backend, request, tmp_path)
        url = next(urls)
        engine = make_engine(url)
        contract_metadata.create_all(engine)
        try:
            yield engine
        finally:
            engine.dispose()
            next(urls, None)

    @pytest.fixture
    def conn(self, engine: Engine) -> Iterator[Connection]:
        with engine.connect() as conn, conn.begin():
            yield conn

    @pytest.fixture
    def many(self, conn: Connection) -> list[dict[str, Any]]:
        rows = [thing(i) for i in range(2000)]
        random.Random(7).shuffle(rows)
        conn.execute(insert(things), rows)
        return rows

    # -- create / get ---------------------------------------------------------------
    def test_create_returns_the_stored_row(self, conn: Connection) -> None:
        values = thing(1)
        row = ThingRepository(conn).create(values)
        assert dict(row) == values
        assert row["created_at"].tzinfo is not None and row["created_at"] == values["created_at"]

    def test_get_by_id_and_filter(self, conn: Connection) -> None:
        repo = ThingRepository(conn)
        values = repo.create(thing(1))
        assert repo.get(values["id"])["name"] == "thing 00001"
        assert repo.get(uuid.uuid4()) is None
        assert repo.get(values["id"], where=[things.c.colour == "purple"]) is None

    # -- update / delete / count -------------------------------------------------------
    def test_update_bumps_the_version(self, conn: Connection) -> None:
        repo = ThingRepository(conn)
        row = repo.create(thing(1))
        updated = repo.update(row["id"], {"name": "renamed"}, expected_version=1)
        assert (updated["name"], updated["version"]) == ("renamed", 2)
        assert repo.update(row["id"], {"rank": 99})["version"] == 3  # without a version: last write wins

    def test_update_with_a_stale_version_conflicts_and_changes_nothing(self, conn: Connection) -> None:
        repo = ThingRepository(conn)
        row = repo.create(thing(1))
        repo.update(row["id"], {"name": "first"}, expected_version=1)
        with pytest.raises(AppError) as err:
            repo.update(row["id"], {"name": "second"}, expected_version=1)
        assert err.value.code == "version_conflict"
        assert repo.get(row["id"])["name"] == "first"

    def test_update_of_a_missing_or_filtered_row_is_none(self, conn: Connection) -> None:
        repo = ThingRepository(conn)
        row = repo.create(thing(1))
        assert repo.update(uuid.uuid4(), {"name": "x"}) is None
        assert repo.update(uuid.uuid4(), {"name": "x"}, expected_version=1) is None
        # A row outside the caller's filter behaves as missing, even with a version.
        hidden = [things.c.colour == "purple"]
        assert repo.update(row["id"], {"name": "x"}, expected_version=7, where=hidden) is None
        assert repo.get(row["id"])["name"] == "thing 00001"

    def test_delete(self, conn: Connection) -> None:
        repo = ThingRepository(conn)
        row = repo.create(thing(1))
        assert repo.delete(row["id"], where=[things.c.colour == "purple"]) is False
        assert repo.delete(row["id"]) is True
        assert repo.get(row["id"]) is None
        assert repo.delete(row["id"]) is False

    def test_count(self, conn: Connection, many: list[dict[str, Any]]) -> None:
        repo = ThingRepository(conn)
        assert repo.count() == 2000
        assert repo.count(where=[things.c.colour == "red"]) == sum(r["colour"] == "red" for r in many)

    # -- find_all ------------------------------------------------------------------------
    @pytest.mark.parametrize("sort", ["rank", "created_at", "name"])
    @pytest.mark.parametrize("desc", [False, True], ids=["asc", "desc"])
    def test_keyset_pages_cover_every_row_once(self, conn: Connection, many: list[dict[str, Any]],
                                               sort: str, desc: bool) -> None:
        repo = ThingRepository(conn)
        seen: list[uuid.UUID] = []
        cursor = None
        pages = 0
        while True:
            page = repo.find_all(sort=sort, desc=desc, cursor=cursor, limit=37)
            seen += [r["id"] for r in page.items]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        expected = sorted(many, key=lambda r: (r[sort], r["id"]), reverse=desc)
        assert len(seen) == len(set(seen)) == 2000
        assert seen == [r["id"] for r in expected]
        assert pages == -(-2000 // 37)

    def test_filter_and_pagination_combine(self, conn: Connection, many: list[dict[str, Any]]) -> None:
        repo = ThingRepository(conn)
        where = [things.c.colour == "green", things.c.rank >= 3]
        seen = []
        cursor = None
        while True:
            page = repo.find_all(where=where, sort="rank", desc=True, cursor=cursor, limit=50)
            seen += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
        expected = sorted((r for r in many if r["colour"] == "green" and r["rank"] >= 3),
                          key=lambda r: (r["rank"], r["id"]), reverse=True)
        assert [r["id"] for r in seen] == [r["id"] for r in expected]

    def test_last_page_has_no_cursor(self, conn: Connection) -> None:
        repo = ThingRepository(conn)
        for i in range(4):
            repo.create(thing(i))
        full = repo.find_all(limit=4)
        assert len(full.items) == 4 and full.next_cursor is None
        first = repo.find_all(limit=3)
        assert len(first.items) == 3 and first.next_cursor is not None
        rest = repo.find_all(limit=3, cursor=first.next_cursor)
        assert len(rest.items) == 1 and rest.next_cursor is None
        assert repo.find_all(where=[things.c.colour == "purple"]).items == []

    def test_rows_inserted_behind_the_cursor_do_not_shift_the_next_page(self, conn: Connection) -> None:
        repo = ThingRepository(conn)
        rows = [repo.create(thing(i, rank=i)) for i in range(10)]
        first = repo.find_all(sort="rank", limit=5)
        repo.create(thing(100, rank=-1))  # sorts before everything already read
        second = repo.find_all(sort="rank", limit=5, cursor=first.next_cursor)
        assert [r["id"] for r in first.items + second.items] == [r["id"] for r in rows]

    def test_cursor_of_another_ordering_is_rejected(self, conn: Connection, many: list[dict[str, Any]]) -> None:
        repo = ThingRepository(conn)
        by_rank = repo.find_all(sort="rank", limit=10).next_cursor
        by_rank_desc = repo.find_all(sort="rank", desc=True, limit=10).next_cursor
        for sort, desc, cursor in (("name", False, by_rank), ("rank", True, by_rank),
                                   ("rank", False, by_rank_desc), ("created_at", False, by_rank)):
            with pytest.raises(AppError) as err:
                repo.find_all(sort=sort, desc=desc, cursor=cursor)
            assert err.value.code == "invalid_cursor"

    @pytest.mark.parametrize("sort,payload", [
        ("created_at", ["created_at", False, "yesterday", str(uuid.uuid4())]),
        ("created_at", ["created_at", False, {"t": "2026-01-01T00:00:00"}, str(uuid.uuid4())]),
        ("created_at", ["created_at", False, {"t": 5}, str(uuid.uuid4())]),
        ("rank", ["rank", False, "3; DROP TABLE contract_things", str(uuid.uuid4())]),
        ("rank", ["rank", False, True, str(uuid.uuid4())]),
        ("name", ["name", False, 12, str(uuid.uuid4())]),
        ("name", ["name", False, {"u": 12}, str(uuid.uuid4())]),
        ("name", ["name", False, "x", 12]),
        ("name", ["name", False, "x", "not-a-uuid"]),
        ("name", ["name", False, "x"]),
        ("name", {"sort": "name"}),
    ])
    def test_tampered_cursors_are_invalid_cursor(self, conn: Connection, sort: str, payload: Any) -> None:
        cursor = base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")
        with pytest.raises(AppError) as err:
            ThingRepository(conn).find_all(sort=sort, cursor=cursor)
        assert err.value.code == "invalid_cursor"
        for garbage in ("%%%", "bm90IGpzb24"):
            with pytest.raises(AppError):
                ThingRepository(conn).find_all(sort=sort, cursor=garbage)

    def test_hand_made_cursor_of_the_right_shape_works(self, conn: Connection, many: list[dict[str, Any]]) -> None:
        repo = ThingRepository(conn)
        cursor = encode_cursor("rank", False, 6, uuid.UUID(int=0))
        items = repo.find_all(sort="rank", cursor=cursor, limit=2000).items
        assert [r["rank"] for r in items] == [6] * sum(r["rank"] == 6 for r in many)

    def test_unknown_sort_column_is_refused(self, conn: Connection) -> None:
        with pytest.raises(AppError) as err:
            ThingRepository(conn).find_all(sort="colour")
        assert err.value.code == "invalid_parameter"


class TestSqliteRepository(RepositoryContract):
    backend = "sqlite"


@pytest.mark.postgres
class TestPostgresRepository(RepositoryContract):
    backend = "postgres"
