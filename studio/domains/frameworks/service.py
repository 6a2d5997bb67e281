"""Use cases of the frameworks domain: import, browse, search, mappings and the control graph."""

from __future__ import annotations

import builtins
import contextlib
import csv
import io
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from studio.db.engine import Database, UnitOfWork, utcnow
from studio.domains.frameworks.parsing import (
    ImportInvalid,
    ParsedFramework,
    Problem,
    UnknownFormat,
    parse,
)
from studio.domains.frameworks.repository import FrameworkRepository
from studio.domains.users.service import require
from studio.errors import AppError, forbidden, not_found
from studio.principal import Principal
from studio.records import record

RELATIONS = ("equal", "subset", "superset", "intersects", "related")
ORIGINS = ("manual", "imported", "suggested", "derived")
FRAMEWORK_FIELDS = ("id", "key", "name", "description", "organization_id", "created_at", "updated_at")
VERSION_FIELDS = ("id", "framework_id", "seq", "version", "source_format", "control_count", "imported_at")
CONTROL_FIELDS = ("id", "version_id", "ref", "label", "kind", "parent_id", "family", "title", "weight")
DETAIL_FIELDS = CONTROL_FIELDS + ("statement", "guidance", "objectives")
MAPPING_FIELDS = ("id", "source_id", "target_id", "relation", "strength", "origin", "note", "organization_id",
                  "created_at")
Progress = Callable[[str, int, int], None]
RecordPage = tuple[list[dict[str, Any]], str | None]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:120] or "framework"


def invalid(problems: list[Problem]) -> AppError:
    details = [{"field": p.location, "location": p.location, "message": p.message} for p in problems]
    return AppError("validation_error", f"the file has {len(problems)} problem(s); nothing was imported",
                    details=details)


MAPPING_COLUMNS = ("source_framework", "source", "target_framework", "target", "relation", "strength")


def _mapping_rows(data: bytes, content_type: str | None) -> list[tuple[str, dict[str, str]]]:
    """(location, row) pairs from a mapping CSV, or from the same rows as JSON {"mappings": [...]}."""
    media = (content_type or "").partition(";")[0].strip().lower()
    if media == "application/json" or data.lstrip()[:1] == b"{":
        from pydantic import ValidationError

        from studio.domains.frameworks.schemas import MappingFile

        try:
            parsed = MappingFile.model_validate_json(data).mappings
        except ValidationError as exc:
            raise invalid([Problem("/" + "/".join(str(p) for p in e["loc"]),
                                   "unknown field" if e["type"] == "extra_forbidden" else e["msg"])
                           for e in exc.errors()[:200]]) from exc
        return [(f"/mappings/{i}", {k: str(v).replace("\x00", "").strip() for k, v in row.model_dump().items()})
                for i, row in enumerate(parsed)]
    try:
        reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
    except UnicodeDecodeError as exc:
        raise invalid([Problem("line 1", f"the file is not UTF-8: {exc}")]) from exc
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in MAPPING_COLUMNS if c not in header]
    if missing:
        raise invalid([Problem("line 1", f"missing column(s): {', '.join(missing)}")])
    reader.fieldnames = header
    return [(f"line {reader.line_num}", {k: (v or "").replace("\x00", "").strip() for k, v in row.items() if k})
            for row in reader]


def framework_stream(framework_id: uuid.UUID | str) -> str:
    return f"framework:{framework_id}"


def viewer_of(principal: Principal | None, organization_id: uuid.UUID | None = None) -> uuid.UUID | None:
    """Whose view of the catalog a call has: the caller's organization (shared + its own);
    without a caller (the operator's CLI), `organization_id`, else the shared catalog alone."""
    return principal.organization_id if principal is not None else organization_id


def owner_for(principal: Principal | None, organization_id: uuid.UUID | None = None) -> uuid.UUID | None:
    """Who owns what a call writes: super_admin and the CLI write the shared catalog (None),
    unless the CLI names an organization; an admin writes their organization's own."""
    if principal is None:
        return organization_id
    return None if principal.is_super_admin else principal.organization_id


def mapping_owner(principal: Principal | None, owners: Iterable[uuid.UUID | None],
                  organization_id: uuid.UUID | None = None) -> uuid.UUID | None:
    """The owner of a new mapping between controls whose frameworks have `owners`: shared only
    when the writer writes the shared catalog and both ends are in it, else the writer's
    organization (a shared mapping never names an organization's own control)."""
    owner = owner_for(principal, organization_id)
    if owner is None and any(o is not None for o in owners):
        return viewer_of(principal, organization_id)
    return owner


def may_change(principal: Principal | None, owner: uuid.UUID | None) -> bool:
    """Whether the caller may change something owned by `owner` that they can see."""
    if principal is None:
        return True
    return principal.is_super_admin if owner is None else owner == principal.organization_id


def store_framework(uow: UnitOfWork, parsed: ParsedFramework, *, key: str | None, actor: uuid.UUID | None,
                    owner: uuid.UUID | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Write a parsed framework as a new version (or report it unchanged) inside `uow`.

    `owner` None writes the shared catalog, else that organization's own frameworks. A key
    means one thing to an organization: an organization's import under a shared key, and a
    shared import under a key an organization already uses, are refused (409)."""
    repo = FrameworkRepository(uow.conn, owner)
    key = slug(key or parsed.name)
    now = utcnow()
    fw = repo.by_key(key)
    if fw is not None and fw["organization_id"] != owner:
        raise AppError("duplicate", f"the key {key!r} is a framework of the shared catalog; "
                       "import under another key", details=[{"field": "key", "message": "used by the shared catalog"}])
    if fw is None and owner is None and repo.key_owners(key):
        raise AppError("duplicate", f"the key {key!r} is used by an organization's own framework; "
                       "import under another key", details=[{"field": "key", "message": "already in use"}])
    previous = None
    if fw is None:
        fw_id = uuid.uuid4()
        try:
            with uow.conn.begin_nested():
                repo.add_framework(fw_id, key, parsed.name, parsed.description, now, owner)
        except IntegrityError as exc:  # a concurrent import of the same key won the race
            raise AppError("duplicate", f"a framework with the key {key!r} was just imported; try again",
                           details=[{"field": "key", "message": "already in use"}]) from exc
    else:
        fw_id = fw["id"]
        previous = repo.latest_version(fw_id)
        if previous is not None and previous["source_digest"] == parsed.digest:
            return {"frameworkId": str(fw_id), "versionId": str(previous["id"]), "key": key,
                    "organizationId": str(owner) if owner else None,
                    "name": fw["name"], "version": previous["version"], "seq": previous["seq"],
                    "unchanged": True, "controls": previous["control_count"],
                    "added": [], "removed": [], "changed": []}
        repo.touch_framework(fw_id, now)
    version_id = uuid.uuid4()
    seq = (previous["seq"] + 1) if previous else 1
    n_controls = sum(1 for c in parsed.controls if c.kind == "control")
    repo.add_version({
        "id": version_id, "framework_id": fw_id, "seq": seq, "version": parsed.version,
        "source_format": parsed.source_format, "source_digest": parsed.digest, "control_count": n_controls,
        "imported_by": actor, "imported_at": now})
    ids = {c.ref: uuid.uuid4() for c in parsed.controls}
    rows = []
    total = len(parsed.controls)
    for i, c in enumerate(parsed.controls):
        rows.append({
            "id": ids[c.ref], "version_id": version_id, "ref": c.ref, "label": c.label, "kind": c.kind,
            "parent_id": ids.get(c.parent_ref) if c.parent_ref else None, "family": c.family,
            "title": c.title, "statement": c.statement, "guidance": c.guidance, "objectives": c.objectives,
            "weight": c.weight, "sort": i,
            "search_text": " ".join((c.label, c.title, c.statement, c.guidance, c.objectives)).lower(),
        })
        if progress and (i % 500 == 0 or i == total - 1):
            progress("controls", i + 1, total)
    repo.insert_controls(rows)
    links = [{"source_id": ids[c.ref], "target_id": ids[r], "rel": "related"}
             for c in parsed.controls for r in c.related]
    repo.insert_links(links)
    added: list[str] = []
    removed: list[str] = []
    changed: list[str] = []
    if previous is not None:
        before = repo.control_texts(previous["id"])
        after = {c.ref: (c.title, c.statement, c.guidance, c.weight, c.kind) for c in parsed.controls}
        added = sorted(r for r in after if r not in before)
        removed = sorted(r for r in before if r not in after)
        changed = sorted(r for r in after if r in before and before[r] != after[r])
    result = {"frameworkId": str(fw_id), "versionId": str(version_id), "key": key, "name": parsed.name,
              "organizationId": str(owner) if owner else None,
              "version": parsed.version, "seq": seq, "unchanged": False, "controls": n_controls,
              "families": total - n_controls, "relatedLinks": len(links),
              "droppedLinks": parsed.dropped_links, "sourceFormat": parsed.source_format,
              "previousVersionId": str(previous["id"]) if previous else None,
              "added": added, "removed": removed, "changed": changed}
    uow.emit("framework.imported", framework_stream(fw_id), {
        **{k: v for k, v in result.items() if k not in ("added", "removed", "changed")},
        "addedCount": len(added), "removedCount": len(removed), "changedCount": len(changed),
        # The full lists can be long; the first hundred of each keep the event small.
        "added": added[:100], "removed": removed[:100], "changed": changed[:100],
    })
    return result


def latest_version_named(conn: Connection, framework: str, organization_id: uuid.UUID | None) -> uuid.UUID | None:
    """The latest version of the framework whose key or name is `framework`, among those the
    organization sees (the shared catalog and its own), if any."""
    repo = FrameworkRepository(conn, organization_id)
    fw = repo.by_key(framework) or repo.by_key(slug(framework)) or repo.by_name(framework)
    if fw is None:
        return None
    latest = repo.latest_version(fw["id"])
    version_id: uuid.UUID | None = latest["id"] if latest else None
    return version_id


class FrameworkService:
    def __init__(self, db: Database):
        self.db = db

    # -- import ---------------------------------------------------------------------------
    def import_file(self, principal: Principal | None, filename: str, data: bytes, *, key: str | None = None,
                    name: str | None = None, version: str | None = None, request_id: str | None = None,
                    progress: Progress | None = None, content_type: str | None = None,
                    organization_id: uuid.UUID | None = None) -> dict[str, Any]:
        """Import a framework file as a new version; a bad file raises with every problem and changes nothing.

        An admin imports into their organization's own frameworks; super_admin, and the CLI
        unless given `organization_id`, into the shared catalog."""
        if principal is not None:
            require(principal, "frameworks.manage")
        try:
            parsed = parse(filename, data, name=name, version=version, content_type=content_type)
        except UnknownFormat as exc:
            raise AppError("unsupported_media_type", exc.problems[0].message,
                           details=[{"field": "file", "message": exc.problems[0].message}]) from exc
        except ImportInvalid as exc:
            raise invalid(exc.problems) from exc
        if progress:
            progress("parsed", len(parsed.controls), len(parsed.controls))
        context = principal.metadata() if principal else {"actor": "cli"}
        with self.db.write(**context, request_id=request_id) as uow:
            return store_framework(uow, parsed, key=key, actor=principal.user_id if principal else None,
                                   owner=owner_for(principal, organization_id), progress=progress)

    # -- browse -----------------------------------------------------------------------------
    def list(self, principal: Principal | None, *, organization_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
        """Frameworks the caller sees (the shared catalog and their organization's own) with their latest version."""
        if principal is not None:
            require(principal, "frameworks.read")
        with self.db.read() as conn:
            return [{**record(r, FRAMEWORK_FIELDS), "latestVersionId": str(r["latest_version_id"]),
                     "latestVersion": r["latest_version"], "latestSeq": r["latest_seq"],
                     "controlCount": r["control_count"]}
                    for r in FrameworkRepository(conn, viewer_of(principal, organization_id)).with_latest_version()]

    # `builtins.list`: in this class body `list` names the method above.
    def versions(self, principal: Principal | None, version_ids: builtins.list[uuid.UUID]) -> dict[str, dict[str, Any]]:
        """Versions by id (as a string) with their framework's name and key, for labels."""
        if principal is not None:
            require(principal, "frameworks.read")
        with self.db.read() as conn:
            return {str(r["id"]): {**record(r, VERSION_FIELDS), "name": r["name"], "key": r["key"]}
                    for r in FrameworkRepository(conn).versions_by_ids(version_ids)}

    def pick_controls(self, principal: Principal | None, version_id: uuid.UUID, text: str, *,
                      limit: int = 20) -> builtins.list[dict[str, Any]]:
        """Controls of a version to choose from: by id (AC-2, ac-2.1) or words of the title."""
        if principal is not None:
            require(principal, "frameworks.read")
        if not text.strip():
            return []
        with self.db.read() as conn:
            return [record(r, CONTROL_FIELDS) for r in FrameworkRepository(conn).pick_controls(version_id, text, limit)]

    def find_controls(self, principal: Principal | None, version_id: uuid.UUID,
                      spellings: builtins.list[str]) -> dict[str, dict[str, Any] | None]:
        """Each spelling (ref or label, any case) with the control it names in the version, or None."""
        if principal is not None:
            require(principal, "frameworks.read")
        with self.db.read() as conn:
            repo = FrameworkRepository(conn)
            refs = repo.refs_of(version_id)
            found = {s: refs.get(s) or refs.get(s.lower()) for s in spellings}
            ids = repo.ids_by_refs(version_id, {r for r in found.values() if r})
            rows = repo.controls_by_ids(ids.values())
            return {s: (record(rows[ids[r]], CONTROL_FIELDS) if r else None) for s, r in found.items()}

    def resolve(self, conn: Connection, framework: str, organization_id: uuid.UUID | None) -> RowMapping:
        """A framework the organization sees, by id, key or name; another's is not found."""
        repo = FrameworkRepository(conn, organization_id)
        row = None
        with contextlib.suppress(ValueError):
            row = repo.get(uuid.UUID(framework))
        row = row or repo.by_key(framework) or repo.by_key(slug(framework)) or repo.by_name(framework)
        if row is None:
            raise not_found("framework")
        return row

    def show(self, principal: Principal | None, framework: str) -> dict[str, Any]:
        """One framework with its versions, by id or key."""
        if principal is not None:
            require(principal, "frameworks.read")
        with self.db.read() as conn:
            fw = self.resolve(conn, framework, viewer_of(principal))
            versions = FrameworkRepository(conn).versions(fw["id"])
            return {**record(fw, FRAMEWORK_FIELDS), "versions": [record(v, VERSION_FIELDS) for v in versions]}

    def version_of(self, conn: Connection, framework: str, version_id: uuid.UUID | None,
                   organization_id: uuid.UUID | None) -> RowMapping:
        fw = self.resolve(conn, framework, organization_id)
        repo = FrameworkRepository(conn)
        version = repo.version(version_id) if version_id else repo.latest_version(fw["id"])
        if version is None or version["framework_id"] != fw["id"]:
            raise not_found("framework version")
        return version

    def controls(self, principal: Principal | None, framework: str, *, version_id: uuid.UUID | None = None,
                 search: str | None = None, parent_id: uuid.UUID | None = None, kind: str | None = None,
                 cursor: str | None = None, limit: int = 100) -> RecordPage:
        """Controls of a framework version in catalog order, optionally searched by words in their text."""
        if principal is not None:
            require(principal, "frameworks.read")
        after = None
        if cursor is not None:
            if not cursor.isdigit():
                raise AppError("invalid_cursor")
            after = int(cursor)
        with self.db.read() as conn:
            version = self.version_of(conn, framework, version_id, viewer_of(principal))
            rows = FrameworkRepository(conn).controls_of(version["id"], kind=kind, parent_id=parent_id,
                                                         search=search, after=after, limit=limit + 1)
        next_cursor = str(rows[limit - 1]["sort"]) if len(rows) > limit else None
        return [record(r, CONTROL_FIELDS) for r in rows[:limit]], next_cursor

    def control(self, principal: Principal | None, control_id: uuid.UUID) -> dict[str, Any]:
        """One control with its full text."""
        if principal is not None:
            require(principal, "frameworks.read")
        with self.db.read() as conn:
            row = FrameworkRepository(conn, viewer_of(principal)).control(control_id)
            if row is None:
                raise not_found("control")
            return record(row, DETAIL_FIELDS)

    # -- the graph ---------------------------------------------------------------------------
    def neighbourhood(self, principal: Principal | None, control_id: uuid.UUID) -> dict[str, Any]:
        """A control's parent, children, catalog links and mappings, each with the other control."""
        if principal is not None:
            require(principal, "frameworks.read")
        with self.db.read() as conn:
            repo = FrameworkRepository(conn, viewer_of(principal))
            me = repo.control(control_id)
            if me is None:
                raise not_found("control")
            children = repo.children(control_id)
            links = repo.links_of(control_id)
            mappings = repo.mappings_touching([control_id])
            other_ids = set(children) | {o for o, _, _ in links} | {me["parent_id"]} - {None}
            other_ids |= {m["target_id"] if m["source_id"] == control_id else m["source_id"] for m in mappings}
            others = repo.controls_by_ids(other_ids)

            def brief(cid: uuid.UUID) -> dict[str, Any]:
                r = others[cid]
                return {"id": str(cid), "ref": r["ref"], "label": r["label"], "title": r["title"],
                        "framework": r["framework"], "versionId": str(r["version_id"])}

            return {
                "control": record(me, CONTROL_FIELDS),
                "parent": brief(me["parent_id"]) if me["parent_id"] else None,
                "children": [brief(c) for c in children],
                "related": [{**brief(o), "rel": rel, "direction": d} for o, rel, d in links],
                "mapped": [{**brief(m["target_id"] if m["source_id"] == control_id else m["source_id"]),
                            "mappingId": str(m["id"]), "relation": m["relation"], "strength": m["strength"],
                            "origin": m["origin"],
                            "direction": "out" if m["source_id"] == control_id else "in"} for m in mappings],
            }

    # -- mappings ------------------------------------------------------------------------------
    def create_mapping(self, principal: Principal, source_id: uuid.UUID, target_id: uuid.UUID, relation: str,
                       strength: int, origin: str = "manual", note: str = "", *,
                       request_id: str | None = None) -> dict[str, Any]:
        """Map one control onto another (any frameworks)."""
        require(principal, "frameworks.manage")
        if source_id == target_id:
            raise AppError("validation_error", "a control cannot be mapped onto itself",
                           details=[{"field": "targetId", "message": "must differ from sourceId"}])
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            repo = FrameworkRepository(uow.conn, principal.organization_id)
            found = repo.controls_by_ids([source_id, target_id])
            for field, cid in (("sourceId", source_id), ("targetId", target_id)):
                if cid not in found:
                    raise AppError("not_found", f"{field}: control not found",
                                   details=[{"field": field, "message": "no such control"}])
            if repo.find_mapping(source_id, target_id, relation) is not None:
                raise AppError("duplicate", "this mapping exists already")
            row = {"id": uuid.uuid4(), "source_id": source_id, "target_id": target_id, "relation": relation,
                   "strength": strength, "origin": origin, "note": note, "created_by": principal.user_id,
                   "created_at": utcnow(),
                   "organization_id": mapping_owner(principal, (c["organization_id"] for c in found.values()))}
            if not repo.add_mapping(row):
                raise AppError("duplicate", "this mapping exists already")
            uow.emit("mapping.created", "mappings", {
                "mappingId": str(row["id"]), "sourceId": str(source_id), "targetId": str(target_id),
                "relation": relation, "strength": strength, "origin": origin})
            return record(row, MAPPING_FIELDS)

    def update_mapping(self, principal: Principal, mapping_id: uuid.UUID, changes: dict[str, Any], *,
                       request_id: str | None = None) -> dict[str, Any]:
        require(principal, "frameworks.manage")
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            repo = FrameworkRepository(uow.conn, principal.organization_id)
            current = repo.mapping(mapping_id)
            if current is None:
                raise not_found("mapping")
            if not may_change(principal, current["organization_id"]):
                raise forbidden("frameworks.manage")
            if not repo.update_mapping(mapping_id, changes):
                raise AppError("duplicate", "a mapping with this relation exists already")
            row = repo.mapping(mapping_id)
            if row is None:  # deleted by a concurrent request since the check above
                raise not_found("mapping")
            uow.emit("mapping.updated", "mappings", {"mappingId": str(mapping_id), "changed": sorted(changes)})
            return record(row, MAPPING_FIELDS)

    def delete_mapping(self, principal: Principal, mapping_id: uuid.UUID, *, request_id: str | None = None) -> None:
        require(principal, "frameworks.manage")
        with self.db.write(**principal.metadata(), request_id=request_id) as uow:
            repo = FrameworkRepository(uow.conn, principal.organization_id)
            current = repo.mapping(mapping_id)
            if current is None:
                raise not_found("mapping")
            if not may_change(principal, current["organization_id"]):
                raise forbidden("frameworks.manage")
            if not repo.delete_mapping(mapping_id):
                raise not_found("mapping")
            uow.emit("mapping.deleted", "mappings", {"mappingId": str(mapping_id)})

    def list_mappings(self, principal: Principal | None, *, control_id: uuid.UUID | None,
                      version_id: uuid.UUID | None, cursor: str | None, limit: int) -> RecordPage:
        if principal is not None:
            require(principal, "frameworks.read")
        after = None
        if cursor:
            try:
                after = uuid.UUID(cursor)
            except ValueError as exc:
                raise AppError("invalid_cursor") from exc
        with self.db.read() as conn:
            rows = FrameworkRepository(conn, viewer_of(principal)).list_mappings(control_id=control_id, version_id=version_id,
                                                           after=after, limit=limit + 1)
        next_cursor = str(rows[limit - 1]["id"]) if len(rows) > limit else None
        return [record(r, MAPPING_FIELDS) for r in rows[:limit]], next_cursor

    def import_mappings(self, principal: Principal | None, data: bytes, *, request_id: str | None = None,
                        content_type: str | None = None) -> dict[str, Any]:
        """Import mappings from CSV (source_framework,source,target_framework,target,relation,strength[,origin,note]).

        Frameworks are named by key (their latest version is used) and controls by ref or label.
        Every bad line is reported; if any is bad nothing is written. Existing mappings are skipped.
        """
        if principal is not None:
            require(principal, "frameworks.manage")
        items = _mapping_rows(data, content_type)
        context = principal.metadata() if principal else {"actor": "cli"}
        with self.db.write(**context, request_id=request_id) as uow:
            repo = FrameworkRepository(uow.conn, viewer_of(principal))
            versions: dict[str, RowMapping | None] = {}
            owners: list[uuid.UUID | None] = []
            refs: dict[uuid.UUID, dict[str, str]] = {}
            problems: list[Problem] = []
            missing: list[str] = []
            rows: list[dict[str, Any]] = []
            now = utcnow()

            def locate(fw_key: str, ref: str, where: str, what: str) -> uuid.UUID | None:
                if fw_key not in versions:
                    fw = repo.by_key(fw_key) or repo.by_key(slug(fw_key))
                    versions[fw_key] = repo.latest_version(fw["id"]) if fw else None
                    if fw is not None:
                        owners.append(fw["organization_id"])
                version = versions[fw_key]
                if version is None:
                    problems.append(Problem(where, f"{what} framework {fw_key!r} is not imported"))
                    missing.append(where)
                    return None
                if version["id"] not in refs:
                    refs[version["id"]] = repo.refs_of(version["id"])
                found = refs[version["id"]].get(ref) or refs[version["id"]].get(ref.lower())
                if found is None:
                    problems.append(Problem(where, f"{what} control {ref!r} is not in {fw_key!r}"))
                    missing.append(where)
                    return None
                return repo.ids_by_refs(version["id"], [found])[found]

            for where, r in items:
                src = locate(r["source_framework"], r["source"], where, "source")
                dst = locate(r["target_framework"], r["target"], where, "target")
                relation = r["relation"].lower()
                origin = (r.get("origin") or "imported").lower()
                if relation not in RELATIONS:
                    problems.append(Problem(where, f"relation must be one of {', '.join(RELATIONS)}"))
                if origin not in ORIGINS:
                    problems.append(Problem(where, f"origin must be one of {', '.join(ORIGINS)}"))
                try:
                    strength = int(r["strength"])
                    if not 0 <= strength <= 10:
                        raise ValueError
                except ValueError:
                    problems.append(Problem(where, "strength must be a whole number from 0 to 10"))
                    strength = 0
                if src is not None and src == dst:
                    problems.append(Problem(where, "a control cannot be mapped onto itself"))
                if src and dst and src != dst:
                    rows.append({"id": uuid.uuid4(), "source_id": src, "target_id": dst, "relation": relation,
                                 "strength": strength, "origin": origin, "note": r.get("note") or "",
                                 "created_by": principal.user_id if principal else None, "created_at": now})
                if len(problems) >= 200:
                    break
            if problems and len(missing) == len(problems):
                # Only references to frameworks or controls that do not exist: like any other
                # request naming a missing object, a 404 (with every one of them listed).
                raise AppError("not_found", f"the file names {len(problems)} framework(s) or control(s) "
                               "that do not exist; nothing was imported", details=[
                                   {"field": p.location, "location": p.location, "message": p.message}
                                   for p in problems])
            if problems:
                raise invalid(problems)
            owner = mapping_owner(principal, owners)
            for m in rows:
                m["organization_id"] = owner
            unique = {(m["source_id"], m["target_id"], m["relation"]): m for m in rows}
            existing = FrameworkRepository(uow.conn, owner).existing_pairs(list(unique))
            fresh = [m for k, m in unique.items() if k not in existing]
            repo.insert_mappings(fresh)
            uow.emit("mapping.imported", "mappings", {"created": len(fresh), "skipped": len(rows) - len(fresh)})
            return {"created": len(fresh), "skipped": len(rows) - len(fresh)}

    def derive_equal(self, principal: Principal | None, source: str, target: str, *,
                     request_id: str | None = None) -> dict[str, Any]:
        """Map every control of one framework's latest version to the control with the same catalog id
        in another's as "equal" (origin "derived"): a LOW-baseline control is the same control in MODERATE."""
        if principal is not None:
            require(principal, "frameworks.manage")
        context = principal.metadata() if principal else {"actor": "cli"}
        with self.db.write(**context, request_id=request_id) as uow:
            viewer = viewer_of(principal)
            repo = FrameworkRepository(uow.conn, viewer)
            a = self.version_of(uow.conn, source, None, viewer)
            b = self.version_of(uow.conn, target, None, viewer)
            if a["id"] == b["id"]:
                raise AppError("validation_error", "source and target are the same framework version")
            a_ids = repo.ids_by_refs(a["id"], repo.weights(a["id"]).keys())
            b_ids = repo.ids_by_refs(b["id"], repo.weights(b["id"]).keys())
            now = utcnow()
            pairs = [(a_ids[r], b_ids[r], "equal") for r in sorted(set(a_ids) & set(b_ids))]
            owner = mapping_owner(principal, (a["organization_id"], b["organization_id"]))
            existing = FrameworkRepository(uow.conn, owner).existing_pairs(pairs)
            fresh = [{"id": uuid.uuid4(), "source_id": s, "target_id": t, "relation": rel, "strength": 10,
                      "origin": "derived", "note": "same catalog id", "created_by": None, "created_at": now,
                      "organization_id": owner}
                     for s, t, rel in pairs if (s, t, rel) not in existing]
            repo.insert_mappings(fresh)
            uow.emit("mapping.derived", "mappings", {"sourceVersionId": str(a["id"]),
                                                     "targetVersionId": str(b["id"]), "created": len(fresh)})
            return {"sourceVersionId": str(a["id"]), "targetVersionId": str(b["id"]),
                    "created": len(fresh), "skipped": len(pairs) - len(fresh)}
