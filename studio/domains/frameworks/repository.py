"""Queries of the frameworks domain: versions, the control tree, links, mappings and search."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from studio.domains.frameworks.models import (
    control_links,
    control_mappings,
    controls,
    framework_versions,
    frameworks,
)

CONTROL_COLUMNS = (
    controls.c.id, controls.c.version_id, controls.c.ref, controls.c.label, controls.c.kind,
    controls.c.parent_id, controls.c.family, controls.c.title, controls.c.weight, controls.c.sort,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class VersionIndex:
    """Lookup tables of one framework version's controls (kind "control")."""

    spellings: dict[str, str]  # ref, label, lower-case forms -> ref
    ids: dict[str, uuid.UUID]  # ref -> control id
    weights: dict[str, float]  # ref -> weight

    def resolve(self, spelling: str | None) -> str | None:
        if not spelling:
            return None
        return self.spellings.get(spelling) or self.spellings.get(spelling.lower())


_INDEXES: dict[uuid.UUID, VersionIndex] = {}


def version_index(conn: Connection, version_id: uuid.UUID) -> VersionIndex:
    """The version's lookup tables. A version never changes once imported (a re-import
    makes a new one), so they are cached for the life of the process."""
    index = _INDEXES.get(version_id)
    if index is None:
        spellings: dict[str, str] = {}
        ids: dict[str, uuid.UUID] = {}
        weights: dict[str, float] = {}
        query = select(controls.c.id, controls.c.ref, controls.c.label, controls.c.weight).where(
            controls.c.version_id == version_id, controls.c.kind == "control")
        for cid, ref, label, weight in conn.execute(query):
            ids[ref] = cid
            weights[ref] = weight
            spellings[ref] = ref
            spellings.setdefault(ref.lower(), ref)
            spellings.setdefault(label, ref)
            spellings.setdefault(label.lower(), ref)
        index = VersionIndex(spellings, ids, weights)
        if ids:  # never cache a version seen before its import committed
            _INDEXES[version_id] = index
            if len(_INDEXES) > 256:
                _INDEXES.pop(next(iter(_INDEXES)))
    return index


def frameworks_visible_to(organization_id: uuid.UUID | None) -> ColumnElement[bool]:
    """The frameworks an organization sees: the shared catalog and its own (None: the shared
    catalog only)."""
    owner = frameworks.c.organization_id
    if organization_id is None:
        return owner.is_(None)
    return or_(owner.is_(None), owner == organization_id)


def mappings_visible_to(organization_id: uuid.UUID | None) -> ColumnElement[bool]:
    """The mappings an organization sees: the shared ones and its own."""
    owner = control_mappings.c.organization_id
    if organization_id is None:
        return owner.is_(None)
    return or_(owner.is_(None), owner == organization_id)


UNSCOPED = object()


class FrameworkRepository:
    """Queries of frameworks, controls and mappings. Built with `organization` (a UUID, or None
    for the shared catalog alone), every lookup by id, key or name only finds what that
    organization sees; unscoped (the default) it is for callers that already hold an id they
    were allowed to reach (a project's bound version)."""

    def __init__(self, conn: Connection, organization: uuid.UUID | None | object = UNSCOPED):
        self.conn = conn
        self.scoped = organization is not UNSCOPED
        self.organization: uuid.UUID | None = organization if isinstance(organization, uuid.UUID) else None

    def _fw_scope(self) -> list[ColumnElement[bool]]:
        return [frameworks_visible_to(self.organization)] if self.scoped else []

    def _map_scope(self) -> list[ColumnElement[bool]]:
        return [mappings_visible_to(self.organization)] if self.scoped else []

    # -- frameworks and versions -----------------------------------------------------
    def by_key(self, key: str) -> RowMapping | None:
        """A framework by key; the organization's own before the shared one (an organization
        cannot shadow a shared key, so at most one matches in a scope)."""
        query = (select(frameworks).where(frameworks.c.key == key, *self._fw_scope())
                 .order_by(frameworks.c.organization_id.is_(None)))
        return self.conn.execute(query.limit(1)).mappings().first()

    def key_owners(self, key: str) -> list[uuid.UUID | None]:
        """Every owner (None: the shared catalog) that has a framework with this key, unscoped."""
        return list(self.conn.execute(select(frameworks.c.organization_id).where(frameworks.c.key == key)).scalars())

    def by_name(self, name: str) -> RowMapping | None:
        """A framework by its display name (names are not unique: the shared catalog's first,
        then the organization's own, oldest first)."""
        query = (select(frameworks).where(frameworks.c.name == name, *self._fw_scope())
                 .order_by(frameworks.c.organization_id.is_not(None), frameworks.c.created_at, frameworks.c.id))
        return self.conn.execute(query.limit(1)).mappings().first()

    def get(self, framework_id: uuid.UUID) -> RowMapping | None:
        query = select(frameworks).where(frameworks.c.id == framework_id, *self._fw_scope())
        return self.conn.execute(query).mappings().first()

    def add_framework(self, framework_id: uuid.UUID, key: str, name: str, description: str,
                      at: dt.datetime, organization_id: uuid.UUID | None = None) -> None:
        """Record a framework seen for the first time (owner None: the shared catalog)."""
        self.conn.execute(insert(frameworks).values(id=framework_id, key=key, name=name, description=description,
                                                    created_at=at, updated_at=at, organization_id=organization_id))

    def touch_framework(self, framework_id: uuid.UUID, at: dt.datetime) -> None:
        """Note that the framework got a new version."""
        self.conn.execute(update(frameworks).where(frameworks.c.id == framework_id).values(updated_at=at))

    def add_version(self, values: dict[str, Any]) -> None:
        """Record a framework version (its controls are inserted apart)."""
        self.conn.execute(insert(framework_versions).values(**values))

    def with_latest_version(self) -> list[RowMapping]:
        """Every framework with its latest version's id, version, seq and control count, by name."""
        latest = (
            select(framework_versions.c.framework_id, func.max(framework_versions.c.seq).label("seq"))
            .group_by(framework_versions.c.framework_id).subquery()
        )
        query = (
            select(frameworks, framework_versions.c.id.label("latest_version_id"),
                   framework_versions.c.version.label("latest_version"),
                   framework_versions.c.seq.label("latest_seq"),
                   framework_versions.c.control_count)
            .join(latest, latest.c.framework_id == frameworks.c.id)
            .join(framework_versions, and_(framework_versions.c.framework_id == frameworks.c.id,
                                           framework_versions.c.seq == latest.c.seq))
            .where(*self._fw_scope())
            .order_by(frameworks.c.name, frameworks.c.id)
        )
        return list(self.conn.execute(query).mappings())

    def versions(self, framework_id: uuid.UUID) -> list[RowMapping]:
        query = (select(framework_versions).where(framework_versions.c.framework_id == framework_id)
                 .order_by(framework_versions.c.seq))
        return list(self.conn.execute(query).mappings())

    def version(self, version_id: uuid.UUID) -> RowMapping | None:
        query = (select(framework_versions, frameworks.c.name, frameworks.c.key, frameworks.c.organization_id)
                 .join(frameworks, frameworks.c.id == framework_versions.c.framework_id)
                 .where(framework_versions.c.id == version_id, *self._fw_scope()))
        return self.conn.execute(query).mappings().first()

    def versions_by_ids(self, version_ids: Iterable[uuid.UUID]) -> list[RowMapping]:
        """Versions with their framework's name and key."""
        ids = list(version_ids)
        if not ids:
            return []
        query = (select(framework_versions, frameworks.c.name, frameworks.c.key)
                 .join(frameworks, frameworks.c.id == framework_versions.c.framework_id)
                 .where(framework_versions.c.id.in_(ids)))
        return list(self.conn.execute(query).mappings())

    def latest_version(self, framework_id: uuid.UUID) -> RowMapping | None:
        query = (select(framework_versions, frameworks.c.organization_id)
                 .join(frameworks, frameworks.c.id == framework_versions.c.framework_id)
                 .where(framework_versions.c.framework_id == framework_id)
                 .order_by(framework_versions.c.seq.desc()).limit(1))
        return self.conn.execute(query).mappings().first()

    # -- controls ------------------------------------------------------------------------
    def insert_controls(self, rows: list[dict[str, Any]]) -> None:
        for start in range(0, len(rows), 1000):
            self.conn.execute(insert(controls), rows[start:start + 1000])

    def insert_links(self, rows: list[dict[str, Any]]) -> None:
        for start in range(0, len(rows), 2000):
            self.conn.execute(insert(control_links), rows[start:start + 2000])

    def control_texts(self, version_id: uuid.UUID) -> dict[str, tuple[Any, ...]]:
        """ref -> the fields whose change counts as a changed control between versions."""
        query = select(controls.c.ref, controls.c.title, controls.c.statement, controls.c.guidance,
                       controls.c.weight, controls.c.kind).where(controls.c.version_id == version_id)
        return {r.ref: tuple(r[1:]) for r in self.conn.execute(query)}

    def catalog_controls(self, version_id: uuid.UUID) -> list[RowMapping]:
        """The version's controls (not families) in catalog order: id, ref, label, title, weight."""
        query = (select(controls.c.id, controls.c.ref, controls.c.label, controls.c.title, controls.c.weight)
                 .where(controls.c.version_id == version_id, controls.c.kind == "control")
                 .order_by(controls.c.sort))
        return list(self.conn.execute(query).mappings())

    def controls_of(self, version_id: uuid.UUID, *, kind: str | None = None, parent_id: uuid.UUID | None = None,
                    top_level: bool = False, search: str | None = None, after: int | None = None,
                    limit: int = 200) -> list[RowMapping]:
        query = select(*CONTROL_COLUMNS).where(controls.c.version_id == version_id)
        if kind:
            query = query.where(controls.c.kind == kind)
        if parent_id is not None:
            query = query.where(controls.c.parent_id == parent_id)
        elif top_level:
            query = query.where(controls.c.parent_id.is_(None))
        if search:
            for term in search.lower().split()[:8]:
                query = query.where(controls.c.search_text.contains(term, autoescape=True))
        if after is not None:
            query = query.where(controls.c.sort > after)
        return list(self.conn.execute(query.order_by(controls.c.sort).limit(limit)).mappings())

    def pick_controls(self, version_id: uuid.UUID, text: str, limit: int) -> list[RowMapping]:
        """Controls whose id (label or ref) starts with `text`, or whose title holds each of
        its words: exact ids first, then ids that start with it, then titles, in catalog order."""
        needle = text.strip().lower()
        label = func.lower(controls.c.label)
        by_id = or_(label.startswith(needle, autoescape=True),
                    controls.c.ref.startswith(needle, autoescape=True))
        words = needle.split()[:8]
        by_title = and_(*(func.lower(controls.c.title).contains(w, autoescape=True) for w in words))
        rank = case((or_(label == needle, controls.c.ref == needle), 0), (by_id, 1), else_=2)
        query = (select(*CONTROL_COLUMNS)
                 .where(controls.c.version_id == version_id, controls.c.kind == "control",
                        or_(by_id, by_title) if words else by_id)
                 .order_by(rank, controls.c.sort).limit(limit))
        return list(self.conn.execute(query).mappings())

    def control(self, control_id: uuid.UUID) -> RowMapping | None:
        query = select(controls).where(controls.c.id == control_id)
        if self.scoped:
            query = (query.join(framework_versions, framework_versions.c.id == controls.c.version_id)
                     .join(frameworks, frameworks.c.id == framework_versions.c.framework_id)
                     .where(*self._fw_scope()))
        return self.conn.execute(query).mappings().first()

    def control_by_ref(self, version_id: uuid.UUID, ref: str) -> RowMapping | None:
        """A control by its catalog id (ac-2.1) or its label (AC-2(1)), case-insensitively."""
        query = select(controls).where(controls.c.version_id == version_id, controls.c.ref == ref)
        row = self.conn.execute(query).mappings().first()
        if row is None:
            query = select(controls).where(controls.c.version_id == version_id,
                                           func.lower(controls.c.label) == ref.lower())
            row = self.conn.execute(query.limit(1)).mappings().first()
        if row is None and ref.lower() != ref:
            query = select(controls).where(controls.c.version_id == version_id, controls.c.ref == ref.lower())
            row = self.conn.execute(query).mappings().first()
        return row

    def refs_of(self, version_id: uuid.UUID) -> dict[str, str]:
        """Every spelling a user may give (ref, label, lower-case label) -> the ref."""
        out: dict[str, str] = {}
        query = select(controls.c.ref, controls.c.label).where(
            controls.c.version_id == version_id, controls.c.kind == "control")
        for ref, label in self.conn.execute(query):
            out[ref] = ref
            out.setdefault(ref.lower(), ref)
            out.setdefault(label, ref)
            out.setdefault(label.lower(), ref)
        return out

    def weights(self, version_id: uuid.UUID) -> dict[str, float]:
        query = select(controls.c.ref, controls.c.weight).where(
            controls.c.version_id == version_id, controls.c.kind == "control")
        return {ref: weight for ref, weight in self.conn.execute(query)}

    def controls_by_ids(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, RowMapping]:
        ids = list(ids)
        if not ids:
            return {}
        query = (select(*CONTROL_COLUMNS, framework_versions.c.framework_id, frameworks.c.name.label("framework"),
                        frameworks.c.organization_id)
                 .join(framework_versions, framework_versions.c.id == controls.c.version_id)
                 .join(frameworks, frameworks.c.id == framework_versions.c.framework_id)
                 .where(controls.c.id.in_(ids), *self._fw_scope()))
        return {r["id"]: r for r in self.conn.execute(query).mappings()}

    def ids_by_refs(self, version_id: uuid.UUID, refs: Iterable[str]) -> dict[str, uuid.UUID]:
        refs = list(refs)
        if not refs:
            return {}
        query = select(controls.c.ref, controls.c.id).where(
            controls.c.version_id == version_id, controls.c.ref.in_(refs))
        return {ref: cid for ref, cid in self.conn.execute(query)}

    # -- the graph -----------------------------------------------------------------------
    def children(self, control_id: uuid.UUID) -> list[uuid.UUID]:
        return list(self.conn.execute(select(controls.c.id).where(controls.c.parent_id == control_id)
                                      .order_by(controls.c.sort)).scalars())

    def links_of(self, control_id: uuid.UUID) -> list[tuple[uuid.UUID, str, str]]:
        """(other control, rel, direction) for catalog links in both directions."""
        out = [(r.target_id, r.rel, "out") for r in self.conn.execute(
            select(control_links.c.target_id, control_links.c.rel).where(control_links.c.source_id == control_id))]
        out += [(r.source_id, r.rel, "in") for r in self.conn.execute(
            select(control_links.c.source_id, control_links.c.rel).where(control_links.c.target_id == control_id))]
        return out

    def mappings_touching(self, control_ids: Iterable[uuid.UUID]) -> list[RowMapping]:
        ids = list(control_ids)
        if not ids:
            return []
        query = select(control_mappings).where(
            or_(control_mappings.c.source_id.in_(ids), control_mappings.c.target_id.in_(ids)), *self._map_scope())
        return list(self.conn.execute(query).mappings())

    def mapping(self, mapping_id: uuid.UUID) -> RowMapping | None:
        query = select(control_mappings).where(control_mappings.c.id == mapping_id, *self._map_scope())
        return self.conn.execute(query).mappings().first()

    def find_mapping(self, source_id: uuid.UUID, target_id: uuid.UUID, relation: str) -> RowMapping | None:
        query = select(control_mappings).where(control_mappings.c.source_id == source_id,
                                               control_mappings.c.target_id == target_id,
                                               control_mappings.c.relation == relation, *self._map_scope())
        return self.conn.execute(query).mappings().first()

    def insert_mappings(self, rows: list[dict[str, Any]]) -> None:
        for start in range(0, len(rows), 1000):
            self.conn.execute(insert(control_mappings), rows[start:start + 1000])

    def add_mapping(self, row: dict[str, Any]) -> bool:
        """Insert one mapping; False if the same pair and relation exists already."""
        # A savepoint, so a concurrent insert that won the race leaves the transaction usable.
        try:
            with self.conn.begin_nested():
                self.conn.execute(insert(control_mappings), [row])
        except IntegrityError:
            return False
        return True

    def update_mapping(self, mapping_id: uuid.UUID, values: dict[str, Any]) -> bool:
        """Change a mapping; False if that would duplicate another's pair and relation."""
        try:
            with self.conn.begin_nested():
                self.conn.execute(update(control_mappings).where(control_mappings.c.id == mapping_id)
                                  .values(**values))
        except IntegrityError:
            return False
        return True

    def delete_mapping(self, mapping_id: uuid.UUID) -> bool:
        query = delete(control_mappings).where(control_mappings.c.id == mapping_id, *self._map_scope())
        return self.conn.execute(query).rowcount > 0

    def list_mappings(self, *, control_id: uuid.UUID | None, version_id: uuid.UUID | None,
                      after: uuid.UUID | None, limit: int) -> list[RowMapping]:
        query = select(control_mappings).where(*self._map_scope())
        if control_id is not None:
            query = query.where(or_(control_mappings.c.source_id == control_id,
                                    control_mappings.c.target_id == control_id))
        if version_id is not None:
            in_version = select(controls.c.id).where(controls.c.version_id == version_id)
            query = query.where(or_(control_mappings.c.source_id.in_(in_version),
                                    control_mappings.c.target_id.in_(in_version)))
        if after is not None:
            query = query.where(control_mappings.c.id > after)
        return list(self.conn.execute(query.order_by(control_mappings.c.id).limit(limit)).mappings())

    def existing_pairs(self, pairs: list[tuple[uuid.UUID, uuid.UUID, str]]) -> set[tuple[uuid.UUID, uuid.UUID, str]]:
        if not pairs:
            return set()
        sources = {p[0] for p in pairs}
        found: set[tuple[uuid.UUID, uuid.UUID, str]] = set()
        source_list = list(sources)
        for start in range(0, len(source_list), 500):
            query = select(control_mappings.c.source_id, control_mappings.c.target_id,
                           control_mappings.c.relation).where(
                control_mappings.c.source_id.in_(source_list[start:start + 500]), *self._map_scope())
            found.update((a, b, c) for a, b, c in self.conn.execute(query))
        return found


def catalog_name(key: str, framework_id: uuid.UUID, organization_id: uuid.UUID | None) -> str:
    """How the AI service names a framework: a shared framework by its key, an organization's
    own by key and id (keys are unique per owner only, and the name must fit 100 characters)."""
    return key if organization_id is None else f"{key[:63]}@{framework_id.hex}"


class FrameworkControlSource:
    """The imported frameworks' controls as the AI service embeds them: each framework's
    latest version, its controls and enhancements (not families), each referenced as
    auditors write it (the catalog's label, AC-2(1), else its id).

    Frameworks are named by `catalog_name`: the shared catalog's by key, an organization's
    own by key@id, so two organizations' frameworks with the same key never share vectors."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def frameworks(self, organization_id: uuid.UUID | None | object = UNSCOPED) -> list[str]:
        """The names of the imported frameworks: every one (to build the index), or those an
        organization sees (None: the shared catalog only)."""
        query = select(frameworks.c.key, frameworks.c.id, frameworks.c.organization_id)
        if organization_id is not UNSCOPED:
            query = query.where(frameworks_visible_to(
                organization_id if isinstance(organization_id, uuid.UUID) else None))
        return sorted(catalog_name(key, fid, owner) for key, fid, owner in self.conn.execute(query))

    def name_of(self, framework_id: uuid.UUID) -> str | None:
        """The catalog name of a framework by id."""
        row = self.conn.execute(select(frameworks.c.key, frameworks.c.organization_id)
                                .where(frameworks.c.id == framework_id)).first()
        return None if row is None else catalog_name(row.key, framework_id, row.organization_id)

    def name_for(self, key: str, organization_id: uuid.UUID | None) -> str | None:
        """The catalog name of the framework an organization knows by `key`, if it sees one."""
        fw = FrameworkRepository(self.conn, organization_id).by_key(key)
        return None if fw is None else catalog_name(fw["key"], fw["id"], fw["organization_id"])

    def _framework(self, name: str) -> RowMapping | None:
        key, _, fid = name.partition("@")
        if fid:
            try:
                framework_id = uuid.UUID(hex=fid)
            except ValueError:
                return None
            query = select(frameworks).where(frameworks.c.id == framework_id,
                                             frameworks.c.organization_id.is_not(None))
        else:
            query = select(frameworks).where(frameworks.c.key == key, frameworks.c.organization_id.is_(None))
        return self.conn.execute(query).mappings().first()

    def controls(self, framework: str) -> list[tuple[str, str, str]]:
        """(ref, title, statement) of each control of the framework's latest version, in
        catalog order; none for a name that is not imported."""
        repo = FrameworkRepository(self.conn)
        fw = self._framework(framework)
        version = repo.latest_version(fw["id"]) if fw is not None else None
        if version is None:
            return []
        query = (select(controls.c.ref, controls.c.label, controls.c.title, controls.c.statement)
                 .where(controls.c.version_id == version["id"], controls.c.kind != "family")
                 .order_by(controls.c.sort))
        return [(row.label or row.ref, row.title, row.statement or "") for row in self.conn.execute(query)]
